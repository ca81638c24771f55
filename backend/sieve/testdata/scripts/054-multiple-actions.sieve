require ["fileinto", "copy"];
fileinto "A";
fileinto "B";
fileinto "A";
redirect "x@example.net";
redirect "x@example.net";
keep;
