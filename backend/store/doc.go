// Package store is vmaild's mail store: Maildir++ laid out as Dovecot lays it
// out, so an admin can point vmaild at an existing Dovecot tree and back.
//
// An account lives in <Root>/<PathTemplate> (default "%d/%n/Maildir"), or in
// the account's own maildir path. The folder tree is Maildir++: INBOX is the
// Maildir itself, "Archive/2024" is the sub-maildir ".Archive.2024" (the IMAP
// hierarchy delimiter is "/", see Delimiter). Flags live in the file names as
// the maildir spec and Dovecot write them ("<base>,S=<size>:2,FRS"), keywords
// as the letters a–z mapped through Dovecot's dovecot-keywords file.
//
// New messages are named "<unique>,S=<size>,W=<virtual size>" as Dovecot
// names them, the virtual size being the size in CRLF form that POP3 sends
// (VirtualSize); for a name without W= the size is computed once and kept
// in the index.
//
// Beside the files, every folder has an index (vmaild.index): UIDVALIDITY,
// UIDNEXT and per message UID → file name, size and internal date. It is an
// append-only log that is compacted now and then, and it is only a cache: it
// is rebuilt from the files when it is missing or damaged, and it picks up
// messages that other programs (Postfix, Dovecot, our own lock-free Deliver)
// drop into new/ or cur/ by looking at the directories' mtimes. When it is
// first built in a tree that has a dovecot-uidlist, it keeps Dovecot's
// UIDVALIDITY and UIDs so migrated clients keep their caches. Opening and
// indexing never rename or rewrite a user's message files.
//
// The index also keeps what IMAP needs beyond the files: a MODSEQ per
// message and the folder's HIGHESTMODSEQ with the UIDs expunged since the
// last compaction (RFC 7162 CONDSTORE/QRESYNC: Folder.ChangedSince,
// ExpungedSince, StoreFlags with UNCHANGEDSINCE), and the \Recent boundary
// that makes a new message \Recent in exactly one session of any process
// (RFC 3501). index.go describes the records and how older indexes are
// read.
//
// The folder state is shared by every session of the process and stays
// in memory a while after the last one closes (Store.IdleFolders); each
// use first compares it with the disk (the index's size and inode, the
// directories' mtimes). A SELECT of an unchanged folder hands the new
// view the state's message list (copied only when the view changes it),
// so it costs the same for 10 or 100,000 messages.
//
// The special-use folders (Store.SpecialFolders; Drafts, Sent, Trash and
// Junk by default) exist for every account: a new account gets them at its
// first OpenMailbox, an existing tree when they are first listed or used.
// Whatever creates one also subscribes it, once, in Dovecot's subscriptions
// file, which is only ever rewritten when its list changes; INBOX always
// counts as subscribed. Other folders get a special use when created with
// one (CreateSpecialFolder, IMAP CREATE (USE ...)): it is kept in a file in
// the folder's directory, so it follows RENAME and goes with DELETE (rules
// in specialuse.go).
//
// Writers of one folder are serialised by an in-process lock and an flock(2)
// on vmaild.lock (so several vmaild processes may share a tree). Delivery
// takes neither: it writes to tmp/, fsyncs, renames into new/ and fsyncs
// new/, and the next sync of any reader gives the message its UID.
//
// Errors wrap one of ErrNotFound, ErrExists, ErrInvalid, ErrOverQuota or
// ErrTemporary so the protocol layers can pick a reply without string
// matching.
package store
