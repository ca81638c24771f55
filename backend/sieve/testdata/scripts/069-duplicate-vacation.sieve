require "vacation";
if exists "list-id" { vacation "one"; vacation "two"; }
