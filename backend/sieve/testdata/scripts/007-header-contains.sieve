require "fileinto";
if header :contains "subject" ["won", "digest", "order"] { fileinto "Matched"; }
