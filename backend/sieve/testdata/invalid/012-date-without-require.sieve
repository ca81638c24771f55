if date :is "date" "year" "2020" { keep; }
