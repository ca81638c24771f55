keep;
stop;
