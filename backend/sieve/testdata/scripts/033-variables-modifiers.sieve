require ["variables", "fileinto"];
if header :matches "from" "*@*" {
  set :upperfirst "who" "${1}";
  set :length "len" "${2}";
  set :upper "dom" "${2}";
  fileinto "${who}-${len}-${dom}";
}
