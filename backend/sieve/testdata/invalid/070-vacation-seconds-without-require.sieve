require "vacation";
vacation :seconds 2 "x";
