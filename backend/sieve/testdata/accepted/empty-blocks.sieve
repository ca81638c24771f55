if true { } elsif false { } else { }
keep;
