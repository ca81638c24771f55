require ["imap4flags", "variables", "fileinto"];
addflag "myflags" ["a", "b"];
addflag "myflags" "c a";
removeflag "myflags" "b";
if hasflag :is "myflags" "c" { fileinto :flags "${myflags}" "Vars"; }
