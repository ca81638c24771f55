// Package imap is vmaild's IMAP server (RFC 3501 and 9051, ports 143 and
// 993): a command loop of its own over package wire, the user directory
// for logins, and the Maildir++ store for the mail.
//
// A Server is started like net/http's: set its fields, call Serve (plain,
// with STARTTLS) or ServeTLS (implicit TLS), stop it with Shutdown or Close.
// Connections pass through the connection gate (package gate), which caps
// them per client network, in total and before login (refused with
// * BYE [UNAVAILABLE]), ends a client that has not logged in within the
// pre-auth lifetime however much it sends, and owns the graceful shutdown.
//
// # Shape: one parser owns each connection
//
// Each connection is one goroutine running conn.serve (conn.go): it reads
// a command with wire.Reader, which parses every command and extension
// into typed arguments (go-imap v2's types where they fit) and refuses
// malformed or oversized input with a precise error after skipping the
// rest of that command; the dispatcher (dispatch.go) checks the session
// state, runs the command's handler over the store, reports what other
// sessions changed where RFC 9051 allows it (never after FETCH, STORE,
// SEARCH, SORT or THREAD, where EXPUNGE may not be sent) and writes the
// tagged completion with wire.Encoder. Pipelined commands are answered in
// one write. go-imap's imapserver dispatched a fixed set of commands with
// fixed arguments, so CONDSTORE/QRESYNC (which change SELECT, FETCH,
// STORE, SEARCH and EXPUNGE), SORT, THREAD, ESORT, ID, COMPRESS and
// IMAP4rev1's \Recent could only be added with a second tokenizer in
// front of it, and two parsers disagreed on where a command ends. Here
// the one Reader sees every octet the client sends; go-imap remains for
// its types and, in tests, its client.
//
// The handlers: cmd_auth.go (CAPABILITY, ID, STARTTLS, LOGIN,
// AUTHENTICATE with SASL-IR, ENABLE, COMPRESS, UNAUTHENTICATE),
// cmd_mailbox.go (folders, LIST/LSUB, STATUS, APPEND with MULTIAPPEND,
// QUOTA), cmd_selected.go (SELECT/EXAMINE with CONDSTORE and QRESYNC,
// IDLE, EXPUNGE, FETCH, STORE, COPY/MOVE, SEARCH/ESEARCH, SORT/ESORT,
// THREAD). FETCH items are written by fetchOne, SEARCH keys evaluated by
// searchFolder, LIST answered by listMailboxes.
//
// The selected folder is the store's Folder: this session's own snapshot,
// so sequence numbers change only through this session's commands and
// polls. It carries each message's MODSEQ, the folder's HIGHESTMODSEQ and
// a log of changes (CHANGEDSINCE and QRESYNC touch only what changed),
// and the \Recent messages this session was the first to see.
//
// SEARCH, SORT and THREAD are functions of a selected store.Folder, not of
// the session: searchFolder (search.go) decides what the index knows
// (flags, \Recent, UIDs, sizes, dates, MODSEQ) without opening a file and
// reads a message's header, or its whole text, only for the criteria that
// need them, comparing text as Dovecot does (package sortthread's
// casemap, encoded-word decoding and address rewriting). sortFolder and
// threadFolder (sortsearch.go) hand sortthread the index's data and the
// header fields from the Server's sortCache (sortcache.go), which every
// session shares, keyed by folder directory, UIDVALIDITY and UID and
// bounded in octets. TestSearchOracle compares all three with Dovecot.
//
// Mailbox names cross between the client's spelling (modified UTF-7, or
// UTF-8 after ENABLE UTF8=ACCEPT) and the store's UTF-8 in one place,
// list.go (mailboxName, clientName), which also answers LIST and LSUB
// with LIST-EXTENDED, LIST-STATUS and SPECIAL-USE as pure functions of
// the store's folder list and subscriptions, the way Dovecot 2.3 answers
// them (list_dovecot_test.go compares the two).
//
// A FETCH of a message another session has expunged meanwhile, whose file
// is gone while this session's snapshot still lists it, is answered as
// Dovecot 2.3 answers it (RFC 2180 section 4.1): the snapshot's items
// (UID, FLAGS, INTERNALDATE, RFC822.SIZE), an all-NIL ENVELOPE, no body
// data, and a tagged OK [EXPUNGEISSUED], never NO.
//
// # Bounds
//
// Every read and every write has a deadline (Server.Timeouts, clamped by
// the gate's limits): the login timeout before authentication, the
// autologout timer after it and during IDLE. The Reader bounds lines,
// literals, a command's text, nesting and tokens, and checks a
// synchronizing literal before inviting it. Refused commands count
// against an error budget: 10 before login, as Dovecot's login process
// allows, and 20 in a row after it; then BYE. COMPRESS=DEFLATE's inflater
// is bounded per command and by ratio (package compress).
//
// Authentication (LOGIN, AUTHENTICATE PLAIN and LOGIN) goes through
// protocols/sasl and the shared login service (protocols/login); a
// directory that is down, or no room to verify the password, gives
// NO [UNAVAILABLE], never NO [AUTHENTICATIONFAILED]. Plaintext
// authentication outside TLS is refused (LOGINDISABLED) unless the
// listener allows it.
package imap
