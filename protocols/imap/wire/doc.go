// Package wire is vmaild's IMAP protocol layer: the one parser of a
// client's command stream and the encoder of the server's responses. The
// IMAP session (package imap) is built on it as a command loop of its own
// over the store; go-imap v2 supplies the types (imap.SeqSet,
// imap.SearchCriteria, imap.FetchOptions...) and, in tests, the client.
//
// # Why a parser of our own
//
// go-imap's imapserver dispatches a fixed set of commands with fixed
// arguments. CONDSTORE and QRESYNC change SELECT, FETCH, STORE, SEARCH and
// EXPUNGE themselves (MODSEQ, CHANGEDSINCE, UNCHANGEDSINCE, VANISHED);
// SORT, THREAD, ESEARCH's RETURN, ID, COMPRESS, LIST-EXTENDED and
// IMAP4rev1's \Recent are not reachable through it at all. Adding them
// with a second tokenizer in front of the library made two parsers that
// disagreed on where a command ends (a smuggled command after a
// non-synchronizing literal, a quoted string across CRLF). Here one
// Reader owns every octet the client sends, and one Encoder every octet
// the server answers.
//
// # Reader
//
// A Reader reads from a bufio.Reader, one Command at a time:
//
//	tag SP name [SP arguments] CRLF
//
// Arguments are parsed as they are read, by one small parser per command
// (the parsers table in command.go) over the Reader's token functions:
// atoms, quoted strings (only \" and \\ escapes; no CR, LF or NUL),
// literals {n}, non-synchronizing {n+} (LITERAL+, RFC 7888) and literal8
// ~{n} (BINARY, APPEND only), NIL, parenthesised lists, numbers (number,
// nz-number, number64, mod-sequence), sequence sets (with "*" and "$"
// for SEARCHRES), flags, dates and date-times. There is no intermediate
// tree: each parser fills go-imap's types directly, so a FETCH line costs
// its Command and little else. A line is held whole (it is the unit the
// client writes between literals); a literal's marker must end its line,
// so "a NOOP x{11}" followed by 11 octets is one command whose literal is
// an argument, never a second command.
//
// Bounds (Limits, defaults in brackets): a line [64 KiB], a literal
// argument [64 KiB], an APPEND message (APPENDLIMIT) [64 MiB], a
// command's total text outside APPEND messages [1 MiB], nesting of lists
// and search keys [32; a parenthesised search key counts two], and the
// number of tokens [20,000; one per range of a sequence set]. Sequence
// sets are sorted and merged once, so a hostile order costs O(n log n). A
// synchronizing literal's size is checked against these bounds before the
// continuation request is sent (through the callback given to NewReader,
// which writes "+ Ready" and flushes), so the server never invites data
// it will refuse.
//
// Errors come in two kinds. An *Error is a command refused with a precise
// reason (BAD [CLIENTBUG] "Error in IMAP command FETCH: Invalid sequence
// set \"1:x\"", NO [TOOBIG] for an APPEND over the limit). Unless it is
// Fatal, the Reader has already skipped the rest of that command, so the
// session answers it and reads on: after a bad token the rest of its line
// is dropped, and while that line ends in a non-synchronizing literal,
// the literal and the line after it; a refused synchronizing literal ends
// the command (the client waits for a "+" that does not come); an
// over-long line is discarded up to its LF. Fatal errors are those after
// which the stream cannot be trusted: a non-synchronizing literal over
// the limits (or over 4096 octets with LITERAL-), which the client sends
// anyway. The session answers BYE and closes. Every other error is an
// I/O error of the connection.
//
// APPEND is streamed: ReadCommand returns an *Append once the mailbox is
// read, and Append.Next yields each message (MULTIAPPEND) with its flags,
// date and an io.Reader over the literal, so a 50 MB message is never
// held in memory. The next ReadCommand skips whatever the session left.
// AUTHENTICATE's SASL responses and IDLE's DONE are read with ReadLine.
// STARTTLS and COMPRESS swap the connection under both halves with Reset,
// after checking with Buffered that the client pipelined nothing behind
// the command (which would be plaintext injected before TLS).
//
// # Types
//
// go-imap's types are used where they fit: imap.SeqSet and imap.UIDSet
// ("$" is imap.SearchRes()), imap.SearchCriteria (its ModSeq field
// carries CONDSTORE's MODSEQ key), imap.FetchOptions (ChangedSince
// included), imap.StoreFlags and StoreOptions (UnchangedSince),
// imap.SelectOptions, ListOptions, StatusOptions, CreateOptions and
// AppendOptions, and the data types of answers (imap.ListData,
// StatusData, SearchData, BodyStructure). Our own types fill what they
// lack: QResync (SELECT's QRESYNC parameter), Fetch.Vanished and
// Fetch.RFC822 (RFC 3501's RFC822* items, answered under their own
// names), FlagRecent (RECENT/NEW/OLD), SortKey (RFC 5957's DISPLAYFROM
// and DISPLAYTO), ID's ordered fields (imap.IDData drops unknown ones),
// Envelope and Address (raw header fields and source routes), ThreadNode
// and QuotaResource.
//
// Semantics stay with the session: which commands a state allows, which
// extensions are enabled (a command naming one the server did not
// advertise is parsed all the same), charset support, mailbox name
// encoding (modified UTF-7 or UTF-8 after ENABLE UTF8=ACCEPT), and
// resolving "*" and "$" against the selected mailbox. The Reader only
// canonicalises what has no other meaning: INBOX's case, system flags'
// case, keywords upper-cased; RECENT, NEW and OLD become criteria on
// FlagRecent, as go-imap's server does.
//
// # Encoder
//
// An Encoder writes to a bufio.Writer: status responses with response
// codes (Code and its constructors: UIDVALIDITY, APPENDUID, COPYUID,
// HIGHESTMODSEQ, MODIFIED...), continuation requests, and every data
// response the commands need: CAPABILITY, ENABLED, FLAGS, EXISTS, RECENT,
// EXPUNGE, VANISHED, LIST/LSUB (with CHILDINFO, OLDNAME), STATUS,
// SEARCH, ESEARCH, SORT, THREAD, ID, NAMESPACE, QUOTA, QUOTAROOT and
// FETCH (UID, FLAGS, MODSEQ, INTERNALDATE, RFC822.SIZE, ENVELOPE,
// BODYSTRUCTURE/BODY, BODY[...] and BINARY[...] as literals streamed from
// an io.Reader, BINARY.SIZE). A string is sent quoted when it can be and
// as a literal when it holds CR, LF, NUL, 8-bit octets (unless UTF8=ACCEPT
// is enabled and it is valid UTF-8) or is long; astrings (mailbox names)
// as atoms when they are. ENVELOPE takes the header's raw fields
// (Envelope), so dates and encoded words go out as the message has them.
// Nothing is flushed until the session says so: one write per command,
// not one per response.
//
// # The session loop
//
// Package imap's conn.go is the loop over a Reader and an Encoder (see its
// package comment). Not parsed,
// deliberately, until vmaild offers them: CATENATE, URLAUTH, NOTIFY,
// CONTEXT=SEARCH and PARTIAL, SEARCH's OLDER/YOUNGER (WITHIN), METADATA
// and ACL. APPEND's UTF8 data item (RFC 6855, "UTF8 (~{n}...)") is parsed
// (AppendMessage.UTF8); refusing it before ENABLE UTF8=ACCEPT is the
// session's business.
package wire
