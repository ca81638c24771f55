// Package smtp is vmaild's SMTP front end: the MTA on port 25, the message
// submission agent on 587 (STARTTLS) and 465 (implicit TLS), and the LMTP
// listener an existing Postfix can deliver through. One Server type serves
// all three; its Role decides the policy. The wire protocol is go-smtp's;
// this package adds policy, limits and the mapping of directory and delivery
// outcomes to replies. It knows nothing about storage: recipients are checked
// and messages delivered through delivery.Agent, users through
// userdb.Directory.
//
// # Roles
//
//   - RoleMTA accepts mail for local domains from anyone, and relays to other
//     domains only for clients inside MyNetworks or authenticated sessions.
//   - RoleSubmission requires AUTH (PLAIN, LOGIN; offered only over TLS
//     unless AllowInsecureAuth) before MAIL, relays anywhere, lets a user
//     send only as an address the directory says is theirs, and adds Date
//     and Message-ID when the message lacks them.
//   - RoleLMTP is RFC 2033 for a trusted MTA: no AUTH, local recipients
//     only, one reply per recipient after the message.
//
// # Sender rights
//
// An authenticated session, on any role, may use only the sender addresses
// userdb.Directory.MaySendAs grants its account: MAIL FROM is refused with
// 553 5.7.1, and the null sender too. At the end of DATA every address of
// the From header field and the Sender field's, when present, are checked
// the same way (550 5.7.1, naming the address), unless
// SkipHeaderSenderCheck; a message with no From, more than one From or
// Sender field, or one that net/mail cannot read as an address list is
// refused likewise. A directory that cannot answer is 451 4.3.0. Mail from
// unauthenticated clients is not checked: it comes from the world.
//
// # Addresses and relay tricks
//
// Every address goes through userdb.Split, the one address parser. Before
// that, the forms that have been used to turn a server into an open relay
// get a precise refusal, whatever the client's rights: the percent hack and
// bang paths (554 5.7.1), more than one "@" including quoted local parts
// holding one (553 5.1.3), address literals (550 5.7.1) and trailing-dot
// domains (553 5.1.3). A source route (<@a:user@b>) is ignored as RFC 5321
// appendix C asks: the mailbox after the colon is what is checked.
//
// # SRS bounces
//
// With Server.SRS set, a recipient that is an SRS address in its domain (see
// package srs: a bounce of mail the delivery agent forwarded with a
// rewritten sender) is reversed before anything else: a valid one is
// routed to the original sender, locally or relayed through the queue
// whoever the client, since only our secret could have made it; a forged,
// expired or malformed one is refused with 550 5.7.1 and the reason
// ("forged SRS address: …"), so it is neither relayed nor bounced.
//
// # Message data and smuggling
//
// go-smtp ends DATA only at <CRLF>.<CRLF>, so a bare LF or CR can never end a
// message early here. It does let bare LF and CR through into the message,
// and a message carrying "\n.\n" would end early at a lenient next hop when
// the queue relays it (the 2023 "SMTP smuggling" attack). So a message with a
// bare CR or LF anywhere is refused with 554 5.5.2, over DATA and BDAT alike;
// nothing of it is delivered.
//
// Each message is read once into a spool (memory up to MemorySpoolBytes,
// else an unlinked temporary file in SpoolDir) under MaxMessageBytes, given a
// Received header (and for submission Date and Message-ID when missing) and
// handed to Agent.Deliver as one delivery.Message.
//
// # Checks before the reply
//
// With Server.Checks set, the checks of package inbound (SPF, DKIM, DMARC,
// scanners, milters) run on the spooled message after the Received field
// is added and before the reply, for the roles each names (the MTA by
// default). A reject or tempfail verdict is the reply (its code and text,
// by default 550 5.7.1 or 451 4.7.1) and nothing is delivered; a discard
// is answered 250 and delivers nothing (LMTP: the same reply for every
// recipient). Otherwise the fields the checks add are put on top of the
// message, the fields they name are removed, and the verdict goes to the
// agent in delivery.Envelope.Verdict (Junk filing, Sieve).
//
// # Replies after the message
//
// The agent returns a typed outcome per recipient (delivery.Outcome); Reply
// is the one mapping to SMTP and LMTP replies and enhanced codes (a full
// disk is 452 4.3.1, a full mailbox 452 4.2.2, a message over quota 552
// 5.2.2, a directory outage 451 4.3.0). What RCPT resolved (aliases,
// mailboxes, quota limits) is handed to Agent.Deliver with the envelope's
// facts (client address, HELO, TLS version, user, role, arrival time,
// ORCPT), which the Received header is written from too.
//
// LMTP answers once per recipient with its outcome.
//
// SMTP has one reply for the whole message. Deliver is told so
// (Envelope.OneReply) and owns partial failures: when some recipients got
// the message, every failed destination is in the agent's durable queue,
// retried on its own or bounced to the sender, and the reply is 250. When
// nobody got it, the reply is the first temporary failure (so a directory
// outage never bounces mail), else the first permanent one.
//
// Recipients named twice in one transaction are delivered once.
//
// # Limits
//
// Every listener passes through the connection gate (package gate): caps
// per client network, in total and before login refuse with 421 4.7.0, and
// absolute limits end a session, a login that takes too long (submission)
// and a message transfer. A whole command line must arrive within the read
// timeout or the gate's command deadline, however slowly it is dripped;
// inside a message the read timeout bounds each stall. Timeouts and limits
// are answered with go-smtp's 421 4.4.2. There is also a write timeout, a
// line-length limit (go-smtp
// closes the connection with 500 5.4.0 on a longer line), the message size
// limit, a cap on recipients (452 4.5.3), and a cap on refused commands
// after which the connection is closed with 421 4.7.0. go-smtp itself closes
// a connection after its fourth unparseable or unknown command. AUTH goes
// through the shared login service (protocols/login), which delays
// repeated failures; a directory outage, or no room to verify the
// password, is 454 4.7.0 and never 535.
//
// Replies that go-smtp writes itself keep its codes: commands out of order
// (RCPT before MAIL, DATA before RCPT, MAIL before EHLO, DATA during BDAT)
// get 502 5.5.1 where RFC 5321 would prefer 503, and an unknown command
// gets 500 5.5.2 when its verb has four letters but 501 5.5.2 otherwise
// (XYZZY: go-smtp's parseCmd takes it for a malformed command) where RFC
// 5321 asks 500 5.5.1. go-smtp answers before any Session method runs and
// has no hook for it, and after STARTTLS only go-smtp sees the commands in
// clear, so this package cannot override these replies; a fix belongs in
// go-smtp. Known but unimplemented commands (EXPN, HELP, TURN, SEND, SOML,
// SAML) get 502 5.5.1 and bad arguments 501, as RFC 5321 asks.
package smtp
