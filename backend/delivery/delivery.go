// Package delivery is the mail delivery agent (MDA). A message spooled once
// by a front end (SMTP, submission, LMTP) or by the queue passes three
// stages:
//
//  1. resolve: each recipient becomes its final destinations (aliases
//     expanded, account, maildir and quota limit looked up). The SMTP
//     session does this at RCPT with Agent.Resolve and hands the result to
//     Deliver, so nothing is looked up twice.
//  2. plan: for every local destination the configured Filters run in
//     order. Each sees the Envelope (client, HELO, TLS, user, role, time,
//     the recipient as given), the header and the message, and fills in a
//     Decision: file into a folder, set flags and keywords, add header
//     fields, discard, redirect, send a reply, reject or tempfail that
//     destination. With no filters the plan is "INBOX, unchanged".
//  3. execute: local copies are written once per header variant and
//     hard-linked into every mailbox, all made durable together
//     (store.DeliverGroups: the files and the new/ directories fsynced at
//     once, every quota charged in one transaction); remote
//     destinations, redirects and replies go to the
//     durable queue (what an alias forwards with LocalAgent.ForwardSender's
//     sender: the place for SRS).
//
// Every destination ends with a typed Outcome: Delivered, Queued,
// Temporary(cause) or Permanent(cause). The backend never speaks SMTP;
// protocols/smtp maps outcomes to replies in one place.
//
// # Ownership
//
// A recipient whose destinations partly failed is owned by the agent: the
// failed destinations are spooled (fsynced) into the queue, which retries
// each on its own through Redeliver and sends an RFC 3464 bounce when one
// fails for good (never to the null sender). The recipient's outcome is then
// Queued. With Envelope.OneReply (SMTP DATA, one reply for everybody) the
// same holds across recipients: when some succeed the others are queued, and
// only when all fail in the same class does the failure reach the client.
// A fan-out to several mailboxes is spooled (held) before the first copy is
// written and the copies carry its queue id, so after a crash the queue
// delivers the rest and skips the mailboxes that have theirs: a destination
// already written is never written again by our retries. What the agent
// spools is each failed mailbox marked final (Recipient.Final): its retry
// goes to that mailbox alone, never through the aliases again. Deliver runs under
// one deadline (Config.Timeout) for all destinations.
//
// # Filters
//
// A filter is one small interface, in the manner of go-smtp's Backend:
//
//	type Filter interface {
//		Filter(ctx context.Context, m *Mail, d *Decision) error
//	}
//
// Filter is called once per local destination, in configuration order; a
// later filter sees what earlier ones decided and may change it. An error
// tempfails that destination only. DetailFolders (user+tag@ into folder
// "tag"), JunkFolder and Sieve (each account's active Sieve script,
// several copies through Decision.More) are the filters shipped here;
// signing plugs in the same way.
//
// # Checks and verdicts
//
// Scanners and sender authentication do not run here: they run once per
// message in the SMTP session, at the end of DATA and before the reply, so
// a refusal is an SMTP reply and never a bounce (package backend/inbound).
// What they conclude reaches the filters as Envelope.Verdict: the spam
// score and flag, the virus found, and a request for the Junk folder.
// JunkFolder files spam into the recipient's \Junk folder at a per-user or
// per-domain threshold; Sieve's spamtest and virustest read
// Verdict.SpamTest and Verdict.VirusTest. Header fields the checks add
// (Authentication-Results, X-Spam-*) are already in the message.
package delivery

import (
	"context"
	"io"
	"net/netip"
	"time"

	"github.com/vmaild/vmaild/userdb"
)

// Roles of the listener a message came in on.
const (
	RoleMTA        = "mta"
	RoleSubmission = "submission"
	RoleLMTP       = "lmtp"
	RoleQueue      = "queue" // a retry by the queue
)

// Envelope is the SMTP envelope of one message and the facts about its
// arrival that filters, Received headers and logs read.
type Envelope struct {
	// ID is the session's or queue's id, for logs.
	ID string
	// From is the reverse path; "" is the null sender (bounces).
	From string
	// Recipients are the forward paths accepted at RCPT, in order.
	Recipients []Recipient
	// ClientIP is the client's address; invalid for a local socket.
	ClientIP netip.Addr
	// Helo is the client's HELO/EHLO name.
	Helo string
	// TLS is the TLS version ("TLS1.3"), "" without TLS.
	TLS string
	// User is the authenticated account, "" for none.
	User string
	// Role is the listener's role (RoleMTA, …).
	Role string
	// Received is when the message arrived.
	Received time.Time
	// OneReply says that the client hears one reply for all recipients
	// (SMTP DATA): the agent owns partial failures across recipients.
	OneReply bool
	// RequireTLS: the client gave REQUIRETLS (RFC 8689); the message is
	// relayed only over authenticated TLS.
	RequireTLS bool
	// Verdict is what the checks at the end of DATA concluded (package
	// backend/inbound); nil when nothing was checked.
	Verdict *Verdict
}

// Recipient is one accepted RCPT.
type Recipient struct {
	// Address is the canonical address accepted at RCPT.
	Address string
	// ORCPT is the address as the client gave it (or its ORCPT=).
	ORCPT string
	// Destinations are the final targets; nil: Deliver resolves Address.
	Destinations []Destination
	// Final says that Address is a local mailbox (user+tag@ for a tag) an
	// earlier delivery resolved and queued for retry: Deliver looks up
	// only that account and never expands the address again, so that an
	// address that is also an alias ("alice → alice, archive"), or aliases
	// changed meanwhile, give nobody a second copy.
	Final bool
}

// Relay is a recipient outside our domains, sent on by the queue.
func Relay(address, orcpt string) Recipient {
	return Recipient{Address: address, ORCPT: orcpt,
		Destinations: []Destination{{Destination: userdb.Destination{Address: address}}}}
}

// Destination is one final target, with what delivery needs to know about
// a local mailbox looked up once.
type Destination struct {
	userdb.Destination
	// Maildir overrides the store's path template (local only).
	Maildir string
	// Limit is the quota limit, looked up when quotas are on.
	Limit      userdb.Limit
	limitKnown bool
}

// Message is a message spooled once by the front end: read it as often as
// there are destinations without copying it.
type Message interface {
	io.ReaderAt
	Size() int64
}

// Agent is what the SMTP, submission and LMTP front ends deliver through.
type Agent interface {
	// Resolve is the RCPT-time stage for a recipient in a local domain: its
	// destinations, or the outcome refusing it (NoSuchUser, MailboxFull
	// when every mailbox it reaches is already full, DirectoryDown …).
	Resolve(ctx context.Context, address string) (Recipient, Outcome)
	// Deliver plans and executes the delivery of msg and returns one
	// outcome per recipient, in env.Recipients order. Delivered means on
	// disk (fsynced), Queued means in the durable queue.
	Deliver(ctx context.Context, env Envelope, msg Message) []Outcome
}
