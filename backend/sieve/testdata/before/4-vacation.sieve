require "vacation";
if header :contains "subject" ["order", "hi", "digest"] { vacation :handle "global" "Orders are handled by sales."; }
