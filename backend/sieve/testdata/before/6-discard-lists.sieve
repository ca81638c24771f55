if exists "list-id" { discard; }
