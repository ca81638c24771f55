require ["fileinto", "variables"];
if string :contains "" "" { fileinto "EmptyInEmpty"; }
if string :matches "" "*" { fileinto "StarEmpty"; }
if string :is "${undefined}" "" { fileinto "Undefined"; }
