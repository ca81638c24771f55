// Package sortthread implements the IMAP SORT and THREAD extensions (RFC
// 5256) and SORT=DISPLAY (RFC 5957) over a slice of Message records: the
// sort keys, base subject extraction, sent dates, THREAD=ORDEREDSUBJECT and
// THREAD=REFERENCES, and the THREAD response's wire form. It knows nothing
// of the store or the session: the caller hands it the header fields and
// sizes (from its cache) and writes the numbers it gets back. SEARCH
// compares header text with the same readers (Fold, DecodeHeader,
// AddressText, SentDay), so one parser reads each header format.
//
//	sorted := sortthread.Sort(msgs, []sortthread.Criterion{{Key: sortthread.Date, Reverse: true}})
//	threads := sortthread.Thread(msgs, sortthread.References)
//	line := "* THREAD " + sortthread.FormatThreads(threads, uid)
//
// Dovecot is the oracle (TestDovecotOracle compares both, byte for byte,
// on testdata/corpus through a private Dovecot IMAP), so where Dovecot
// reads the RFC in its own way this package does too:
//
//   - Strings compare by i;unicode-casemap as Dovecot approximates it:
//     every character titlecased then decomposed, compared octet by
//     octet. Go's unicode.ToTitle stands for Dovecot's titlecase table;
//     the decomposition is NFKD where that gives ASCII ("ﬁ" is "fi") and
//     NFD otherwise ("ǅ" stays), which is what Dovecot answers. The base subject is extracted
//     from the folded text, so "re:" and "RE:" are the same leader.
//   - Encoded-words in a charset nobody knows keep their decoded bytes
//     unfolded (Dovecot appends them without its normaliser).
//   - The sent date is the Date header read by Dovecot's lax parser
//     (ParseDate), else the internal date. A Date of exactly the epoch
//     counts as missing, and, since Dovecot keeps dates in 32 unsigned
//     bits, one before 1970 sorts as if it were after 2106.
//   - FROM, TO, CC sort on the first address's mailbox (local part); an
//     address without one gets "MISSING_MAILBOX", a group its name.
//     DISPLAYFROM and DISPLAYTO use the display name, else a comment after
//     a bare address ("user@host (Name)"), else mailbox@domain (with
//     "MISSING_DOMAIN" for a lone word). Words without "<" or "@" ("Just
//     A Name", a lone quoted string) are a display name, not a mailbox.
//   - The last tie is broken by sequence number, ascending even when the
//     last criterion is REVERSE.
//   - REFERENCES: the first message with a Message-ID keeps it, later ones
//     are threaded as if they had none. A link from References never
//     replaces an earlier one (only the message's own parent does), links
//     that would make a loop are dropped, In-Reply-To counts only without
//     a valid References entry and then only its first identifier, and an
//     identifier needs an "@" (Dovecot's message-id parser: MessageIDs).
//     Children and roots go by sent date then UID; a dummy root by its
//     oldest child. Subject gathering (step 5) runs over the roots in that
//     order and the roots are sorted again if anything merged.
//   - ORDEREDSUBJECT: threads are (subject, sent date, sequence) runs,
//     ordered by their first message's sent date then number.
package sortthread
