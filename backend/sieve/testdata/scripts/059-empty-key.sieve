require "fileinto";
if header :contains "cc" "" { fileinto "HasCc"; }
if address :is :all "cc" "" { fileinto "EmptyCc"; }
