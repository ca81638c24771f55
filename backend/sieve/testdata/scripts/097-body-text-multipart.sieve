require ["body", "fileinto"];
if body :text :contains "line two" { fileinto "QPLine"; }
if body :text :contains "VCALENDAR" { fileinto "Cal"; }
if body :content "text/calendar" :contains "VCALENDAR" { fileinto "CalContent"; }
