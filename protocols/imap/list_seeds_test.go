package imap

// mailboxNameSeeds are mailbox arguments in modified UTF-7, valid and
// not: the oracle's table and the fuzzer's seed corpus.
var mailboxNameSeeds = []string{
	"INBOX", "inbox", "InBoX/child", "inboxes", "a", "a/b", "a b",
	"Entw&APw-rfe", "p&AOQA5A-", "&ZeVnLIqe-", "&ZeVnLIqe-/&W1A-", "a&-b", "&-",
	"&2D3eAQ-",                   // U+1F601, a surrogate pair
	"&2D0-", "&3gE-", "&2D3YPQ-", // lone or doubled surrogates
	"a&b", "&", "&AOQ", "a&-", "&AOQ-&AOQ-", // bare &, open shift, shifts back to back
	"&AGE-", "&ACY-", "&AOR-", "&AOQA-", // printable shifted, & shifted, stray bits, half a unit
	"&,,,-", "&+/-", "&AOQ=-", "!#$&'+,-.0123456789:;<=>?@^_`|[}",
	"~foo", "a%b", "a*b", "a.b", "a//b", "a/", "/a", "",
}
