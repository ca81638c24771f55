// Package imap is vmaild's IMAP server (RFC 9051 and 3501, ports 143 and
// 993): go-imap v2's imapserver for the protocol, the user directory for
// logins, and the Maildir++ store for the mail.
//
// A Server is started like net/http's: set its fields, call Serve (plain,
// with STARTTLS) or ServeTLS (implicit TLS), stop it with Shutdown or Close.
// Connections pass through the connection gate (package gate), which caps
// them per client network, in total and before login (refused with
// * BYE [UNAVAILABLE]), ends a client that has not logged in within the
// pre-auth lifetime however much it sends, and owns the graceful shutdown.
//
// The session (session.go, selected.go, fetch.go, search.go) implements
// go-imap's Session interfaces over a store.Mailbox and the selected
// store.Folder. The Folder is the session's own snapshot of the folder, so
// sequence numbers change only through this session's commands and Poll,
// and expunges of other sessions are reported only where IMAP allows them
// (never after FETCH, STORE or SEARCH). IDLE wakes on the store's change
// notifications (other sessions, deliveries through store.Deliver) and
// polls now and then for changes of other programs.
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
// data, and a tagged OK [EXPUNGEISSUED], never NO; the other messages of
// the FETCH arrive whole and the next NOOP announces the EXPUNGE. That
// decision lives in fetch.go (errExpungedMeanwhile, writeExpungedItems).
//
// Between the client and go-imap sits a front (front.go): the net.Conn the
// library sees. It follows the client's command stream exactly — lines,
// literals by their announced length, the library's continuation requests
// and tagged completions — so a command is only ever recognised at a
// command boundary and message data is never taken for commands. It hands
// go-imap one line or literal at a time and refuses what go-imap would
// frame differently (a CR inside a line, a quoted string open at the end
// of a line, data after an APPEND message), so both always agree on where
// a command ends; should they ever disagree (go-imap answering a command
// the front did not forward, or reading past one), the front logs it and
// closes the connection. FuzzFrontDifferential checks this against go-imap
// itself. That is where what go-imap v2.0.0-beta.8 cannot do gets done:
//
//   - QUOTA (RFC 9208): the library neither dispatches GETQUOTAROOT and
//     GETQUOTA nor lets a server add a capability it does not know (its
//     Options.Caps is filtered against fixed lists). The front answers
//     those commands itself from Directory.QuotaLimit and the QuotaStore,
//     and adds QUOTA to every capability list the library writes.
//     Enforcement needs no front: the store charges APPEND and COPY
//     through a store.Quota and its ErrOverQuota becomes NO [OVERQUOTA].
//   - TLS: the front does STARTTLS (dropping plaintext pipelined behind
//     it) so that it keeps seeing plaintext commands; the library is told
//     that authentication is always allowed and the session refuses it on
//     plaintext unless AllowInsecureAuth, while the front advertises
//     STARTTLS and LOGINDISABLED.
//   - Bounds: the front sends the "+" for synchronizing literals after
//     checking their size (APPEND against AppendLimit, NO [TOOBIG];
//     others against the library's 4096 octets, which it would otherwise
//     stall on), closes the connection after an oversized
//     non-synchronizing literal (RFC 7888), and answers lines that are too
//     long, carry NUL octets or have no tag with a precise BAD while the
//     connection goes on.
//   - Timeouts and output: the front owns every read and write deadline
//     (Server.Timeouts, clamped by the gate's limits) and coalesces the
//     library's one-write-per-response output while a command runs.
//
// Authentication (LOGIN, AUTHENTICATE PLAIN and LOGIN) goes through
// protocols/sasl and the shared login service (protocols/login); a
// directory that is down, or no room to verify the password, gives
// NO [UNAVAILABLE], never NO [AUTHENTICATIONFAILED].
package imap
