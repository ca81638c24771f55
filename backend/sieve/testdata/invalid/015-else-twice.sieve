if true {} else {} else {}
