require ["variables", "fileinto"];
set "Folder" "Mixed";
set "FOLDER" "${folder}Case";
fileinto "${FoLdEr}";
