package wire

import (
	"time"

	"github.com/emersion/go-imap/v2"
)

func parseSearch(r *Reader, uid bool) (any, error) {
	a := Search{UID: uid}
	if err := r.sp(); err != nil {
		return nil, err
	}
	var err error
	if a.Return, err = r.searchReturn(); err != nil {
		return nil, err
	}
	if a.Charset, a.Criteria, err = r.charsetAndKeys(false); err != nil {
		return nil, err
	}
	return &a, nil
}

// searchReturn reads an optional "RETURN (...) SP" (RFC 4731, 5182 SAVE).
func (r *Reader) searchReturn() (*imap.SearchOptions, error) {
	if !r.startsWithFold("RETURN ") {
		return nil, nil
	}
	r.pos += len("RETURN ")
	o := &imap.SearchOptions{}
	err := r.list(func() error {
		k, err := r.keyword()
		if err != nil {
			return err
		}
		switch k {
		case "MIN":
			o.ReturnMin = true
		case "MAX":
			o.ReturnMax = true
		case "ALL":
			o.ReturnAll = true
		case "COUNT":
			o.ReturnCount = true
		case "SAVE":
			o.ReturnSave = true
		default:
			return r.bad("Unknown RETURN option %s", k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !o.ReturnMin && !o.ReturnMax && !o.ReturnCount && !o.ReturnSave {
		o.ReturnAll = true // RETURN () means ALL (RFC 4731 section 3.1)
	}
	return o, r.sp()
}

func (r *Reader) startsWithFold(s string) bool {
	rest := r.buf[r.pos:]
	if len(rest) < len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := rest[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// charsetAndKeys reads [CHARSET SP astring SP] search-key *(SP
// search-key); with required, the charset is mandatory and bare (SORT,
// THREAD).
func (r *Reader) charsetAndKeys(required bool) (string, imap.SearchCriteria, error) {
	var charset string
	var c imap.SearchCriteria
	if required {
		cs, err := r.astring()
		if err != nil {
			return "", c, err
		}
		charset = upperString(cs)
		if err := r.sp(); err != nil {
			return "", c, err
		}
	} else if r.startsWithFold("CHARSET ") {
		r.pos += len("CHARSET ")
		cs, err := r.astring()
		if err != nil {
			return "", c, err
		}
		charset = upperString(cs)
		if err := r.sp(); err != nil {
			return "", c, err
		}
	}
	for {
		if err := r.searchKey(&c); err != nil {
			return "", c, err
		}
		if !r.maybeSP() {
			return charset, c, nil
		}
	}
}

func upperString(s string) string { return upper([]byte(s)) }

// searchKey reads one search-key and adds it to c.
func (r *Reader) searchKey(c *imap.SearchCriteria) error {
	if err := r.enter(); err != nil {
		return err
	}
	defer r.leave()
	switch ch := r.peek(); {
	case ch == '(':
		return r.list(func() error { return r.searchKey(c) })
	case ch == '$' || ch == '*' || ('0' <= ch && ch <= '9'):
		set, err := r.numSet(false)
		if err != nil {
			return err
		}
		if imap.IsSearchRes(set) {
			c.UID = append(c.UID, imap.SearchRes())
		} else {
			c.SeqNum = append(c.SeqNum, set.(imap.SeqSet))
		}
		return nil
	}
	k, err := r.keyword()
	if err != nil {
		return err
	}
	switch k {
	case "ALL":
	case "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN":
		c.Flag = append(c.Flag, canonicalFlag("\\"+k))
	case "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN":
		c.NotFlag = append(c.NotFlag, canonicalFlag("\\"+k[2:]))
	case "RECENT":
		c.Flag = append(c.Flag, FlagRecent)
	case "NEW":
		c.Flag = append(c.Flag, FlagRecent)
		c.NotFlag = append(c.NotFlag, imap.FlagSeen)
	case "OLD":
		c.NotFlag = append(c.NotFlag, FlagRecent)
	case "KEYWORD", "UNKEYWORD":
		if err := r.sp(); err != nil {
			return err
		}
		f, err := r.flag(false)
		if err != nil {
			return err
		}
		if k == "KEYWORD" {
			c.Flag = append(c.Flag, f)
		} else {
			c.NotFlag = append(c.NotFlag, f)
		}
	case "BCC", "CC", "FROM", "SUBJECT", "TO":
		if err := r.sp(); err != nil {
			return err
		}
		v, err := r.astring()
		if err != nil {
			return err
		}
		c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: canonicalHeader(k), Value: v})
	case "HEADER":
		var f imap.SearchCriteriaHeaderField
		if err := r.sp(); err != nil {
			return err
		}
		if f.Key, err = r.astring(); err != nil {
			return err
		}
		if err := r.sp(); err != nil {
			return err
		}
		if f.Value, err = r.astring(); err != nil {
			return err
		}
		c.Header = append(c.Header, f)
	case "BODY", "TEXT":
		if err := r.sp(); err != nil {
			return err
		}
		v, err := r.astring()
		if err != nil {
			return err
		}
		if k == "BODY" {
			c.Body = append(c.Body, v)
		} else {
			c.Text = append(c.Text, v)
		}
	case "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE":
		if err := r.sp(); err != nil {
			return err
		}
		t, err := r.date()
		if err != nil {
			return err
		}
		var d imap.SearchCriteria
		switch k {
		case "BEFORE":
			d.Before = t
		case "ON":
			d.Since, d.Before = t, t.Add(24*time.Hour)
		case "SINCE":
			d.Since = t
		case "SENTBEFORE":
			d.SentBefore = t
		case "SENTON":
			d.SentSince, d.SentBefore = t, t.Add(24*time.Hour)
		case "SENTSINCE":
			d.SentSince = t
		}
		c.And(&d)
	case "LARGER", "SMALLER":
		if err := r.sp(); err != nil {
			return err
		}
		n, err := r.number64()
		if err != nil {
			return err
		}
		if k == "LARGER" {
			c.And(&imap.SearchCriteria{Larger: int64(n)})
		} else {
			c.And(&imap.SearchCriteria{Smaller: int64(n)})
		}
	case "UID":
		if err := r.sp(); err != nil {
			return err
		}
		set, err := r.uidSet()
		if err != nil {
			return err
		}
		c.UID = append(c.UID, set)
	case "NOT":
		if err := r.sp(); err != nil {
			return err
		}
		var n imap.SearchCriteria
		if err := r.searchKey(&n); err != nil {
			return err
		}
		c.Not = append(c.Not, n)
	case "OR":
		var or [2]imap.SearchCriteria
		for i := range or {
			if err := r.sp(); err != nil {
				return err
			}
			if err := r.searchKey(&or[i]); err != nil {
				return err
			}
		}
		c.Or = append(c.Or, or)
	case "MODSEQ":
		return r.searchModSeq(c)
	default:
		return r.bad("Unknown search key %s", k)
	}
	return nil
}

func canonicalHeader(k string) string {
	switch k {
	case "BCC":
		return "Bcc"
	case "CC":
		return "Cc"
	case "FROM":
		return "From"
	case "SUBJECT":
		return "Subject"
	}
	return "To"
}

// searchModSeq reads MODSEQ [entry-name SP entry-type-req] SP
// mod-sequence-valzer (RFC 7162 section 3.1.5).
func (r *Reader) searchModSeq(c *imap.SearchCriteria) error {
	if c.ModSeq != nil {
		return r.bad("MODSEQ given twice")
	}
	if err := r.sp(); err != nil {
		return err
	}
	m := &imap.SearchCriteriaModSeq{}
	if r.peek() == '"' {
		name, err := r.quoted()
		if err != nil {
			return err
		}
		m.MetadataName = string(name)
		if err := r.sp(); err != nil {
			return err
		}
		t, err := r.keyword()
		if err != nil {
			return err
		}
		switch t := imap.SearchCriteriaMetadataType(lowerString(t)); t {
		case imap.SearchCriteriaMetadataAll, imap.SearchCriteriaMetadataPrivate, imap.SearchCriteriaMetadataShared:
			m.MetadataType = t
		default:
			return r.bad("Invalid MODSEQ entry type")
		}
		if err := r.sp(); err != nil {
			return err
		}
	}
	n, err := r.number64()
	if err != nil {
		return err
	}
	m.ModSeq = n
	c.ModSeq = m
	return nil
}

func lowerString(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func parseSort(r *Reader, uid bool) (any, error) {
	a := Sort{UID: uid}
	if err := r.sp(); err != nil {
		return nil, err
	}
	var err error
	if a.Return, err = r.searchReturn(); err != nil {
		return nil, err
	}
	err = r.list(func() error {
		var c SortCriterion
		k, err := r.keyword()
		if err != nil {
			return err
		}
		if k == "REVERSE" {
			c.Reverse = true
			if err := r.sp(); err != nil {
				return err
			}
			if k, err = r.keyword(); err != nil {
				return err
			}
		}
		switch SortKey(k) {
		case SortArrival, SortCc, SortDate, SortFrom, SortSize, SortSubject, SortTo, SortDisplayFrom, SortDisplayTo:
			c.Key = SortKey(k)
		default:
			return r.bad("Unknown sort key %s", k)
		}
		a.Keys = append(a.Keys, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(a.Keys) == 0 {
		return nil, r.bad("Empty sort criteria")
	}
	if err := r.sp(); err != nil {
		return nil, err
	}
	if a.Charset, a.Criteria, err = r.charsetAndKeys(true); err != nil {
		return nil, err
	}
	return &a, nil
}

func parseThread(r *Reader, uid bool) (any, error) {
	a := Thread{UID: uid}
	if err := r.sp(); err != nil {
		return nil, err
	}
	k, err := r.keyword()
	if err != nil {
		return nil, err
	}
	a.Algorithm = imap.ThreadAlgorithm(k)
	if err := r.sp(); err != nil {
		return nil, err
	}
	if a.Charset, a.Criteria, err = r.charsetAndKeys(true); err != nil {
		return nil, err
	}
	return &a, nil
}
