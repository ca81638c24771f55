require "variables";
set "folder" "FromBefore";
