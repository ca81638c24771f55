require ["fileinto", "imap4flags"];
if exists "from" {
  if exists "to" {
    if header :contains "subject" "e" {
      addflag "e";
      if size :over 1 { fileinto "Deep"; }
    } else {
      addflag "noe";
    }
  }
}
