REQUIRE "fileinto";
IF HEADER :CONTAINS "Subject" "e" { FILEINTO "Upper"; } ELSE { Keep; }
