require ["vacation", "vacation-seconds"];
vacation :seconds 172800 :handle "s" "Back soon.";
