require ["variables", "fileinto"];
fileinto "${}${1x}${ a}$";
