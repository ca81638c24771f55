stop "x";
