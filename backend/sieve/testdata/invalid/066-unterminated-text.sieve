require "reject";
reject text:
no dot
