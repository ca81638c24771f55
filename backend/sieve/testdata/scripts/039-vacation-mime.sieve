require "vacation";
vacation :mime :handle "m" text:
Content-Type: text/plain; charset=utf-8

Abwesend bis Montag.
.
;
