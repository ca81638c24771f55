if size :over 1k { keep; } if size :under 2M { keep; } if size :over 1G { discard; }
