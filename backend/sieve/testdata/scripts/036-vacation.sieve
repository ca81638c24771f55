require "vacation";
vacation :days 3 :subject "Out of office" :from "me@example.com" :addresses ["me@example.com", "alias@example.com"] :handle "ooo" "I am away until Monday.";
