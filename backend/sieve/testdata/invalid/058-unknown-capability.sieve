require "nonexistent";
keep;
