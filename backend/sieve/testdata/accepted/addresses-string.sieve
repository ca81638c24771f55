require "vacation";
vacation :addresses "a@b.c" "x";
