require "copy";
redirect :copy "User@Example.NET";
redirect "user@example.net";
