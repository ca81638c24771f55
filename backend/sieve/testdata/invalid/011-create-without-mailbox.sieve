require "fileinto";
fileinto :create "x";
