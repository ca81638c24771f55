require "fileinto";
if header :is "subject" "" { fileinto "EmptySubject"; }
if not exists "subject" { fileinto "NoSubject"; }
if header :contains "x-empty" "" { fileinto "XEmpty"; }
