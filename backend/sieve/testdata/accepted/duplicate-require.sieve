require ["fileinto"];
require "fileinto";
keep;
