require "reject";
reject text: # comment
line
..dot
.
;
