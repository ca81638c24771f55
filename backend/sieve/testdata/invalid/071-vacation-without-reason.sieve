require "vacation";
vacation;
