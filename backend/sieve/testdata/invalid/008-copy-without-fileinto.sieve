require "copy";
fileinto :copy "x";
