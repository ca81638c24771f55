if header :contains "subject" "order" { redirect "orders@example.net"; }
