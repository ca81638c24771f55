keep (true);
