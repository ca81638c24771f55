if header :is "sub ject" "x" { keep; }
