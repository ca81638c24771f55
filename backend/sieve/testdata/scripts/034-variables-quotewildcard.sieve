require ["variables", "fileinto"];
set :quotewildcard "pat" "what? *stars*";
if header :matches "subject" "${pat}*" { fileinto "Literal"; }
if string :is "${pat}" "what\\? \\*stars\\*" { fileinto "Quoted"; }
