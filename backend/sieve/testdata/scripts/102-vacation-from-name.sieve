require ["vacation", "variables"];
if address :matches "from" "*@*" { set "dom" "${2}"; }
vacation :days 0 :subject "Re: away" :from "\"Me Myself\" <me@example.com>" :addresses ["me@example.com"] :handle "h-${dom}" "Away, ${dom}.";
