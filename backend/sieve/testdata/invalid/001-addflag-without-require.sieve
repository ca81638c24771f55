addflag "x";
