require ["variables", "fileinto"];
set "folder" "Lists";
set :lower "sub" "${folder}/Sub";
fileinto "${folder}";
fileinto "${sub}";
