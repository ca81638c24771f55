require "reject";
if address :domain :is "from" "lottery.example" {
  reject text:
Your message was refused.
.. A line starting with a dot.
.
;
}
