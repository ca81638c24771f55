package sieve

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// date.go: the date and currentdate tests' date parts (RFC 5260).

var dateParts = map[string]bool{
	"year": true, "month": true, "day": true, "date": true, "julian": true,
	"hour": true, "minute": true, "second": true, "time": true,
	"iso8601": true, "std11": true, "zone": true, "weekday": true,
}

func datePartKnown(p string) bool { return dateParts[p] }

// parseZone reads a :zone argument, "+hhmm" or "-hhmm".
func parseZone(s string) (*time.Location, bool) {
	if len(s) != 5 || s[0] != '+' && s[0] != '-' {
		return nil, false
	}
	for i := 1; i < 5; i++ {
		if !isDigit(s[i]) {
			return nil, false
		}
	}
	h := int(s[1]-'0')*10 + int(s[2]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if h > 23 || m > 59 {
		return nil, false
	}
	off := (h*60 + m) * 60
	if s[0] == '-' {
		off = -off
	}
	return time.FixedZone(s, off), true
}

// headerDate reads a date from a header field's value; for Received the
// date follows the last semicolon.
func headerDate(name, v string) (time.Time, bool) {
	if strings.EqualFold(name, "received") {
		i := strings.LastIndexByte(v, ';')
		if i < 0 {
			return time.Time{}, false
		}
		v = v[i+1:]
	}
	t, err := mail.ParseDate(numericZone(strings.TrimSpace(v)))
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// obsoleteZones are RFC 5322 section 4.3's zone names; military letters
// and unknown names mean "-0000" (no information), read as UTC.
var obsoleteZones = map[string]string{
	"UT": "+0000", "GMT": "+0000", "Z": "+0000",
	"EST": "-0500", "EDT": "-0400", "CST": "-0600", "CDT": "-0500",
	"MST": "-0700", "MDT": "-0600", "PST": "-0800", "PDT": "-0700",
}

// numericZone replaces a trailing zone name with its offset, which
// net/mail would otherwise read as UTC whatever the name.
func numericZone(v string) string {
	s := v
	if i := strings.IndexByte(s, '('); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	i := strings.LastIndexAny(s, " \t")
	if i < 0 {
		return v
	}
	name := strings.ToUpper(s[i+1:])
	if off, ok := obsoleteZones[name]; ok {
		return s[:i+1] + off
	}
	if len(name) > 0 && name[0] != '+' && name[0] != '-' && !isDigit(name[0]) {
		return s[:i+1] + "-0000"
	}
	return v
}

// datePart formats part of t (RFC 5260 section 4.3).
func datePart(t time.Time, part string) string {
	switch part {
	case "year":
		return fmt.Sprintf("%04d", t.Year())
	case "month":
		return fmt.Sprintf("%02d", int(t.Month()))
	case "day":
		return fmt.Sprintf("%02d", t.Day())
	case "date":
		return t.Format("2006-01-02")
	case "julian":
		// Modified Julian Day: days since 1858-11-17.
		y, m, d := t.Date()
		day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		epoch := time.Date(1858, 11, 17, 0, 0, 0, 0, time.UTC)
		return fmt.Sprint(int64(day.Sub(epoch).Hours()) / 24)
	case "hour":
		return fmt.Sprintf("%02d", t.Hour())
	case "minute":
		return fmt.Sprintf("%02d", t.Minute())
	case "second":
		return fmt.Sprintf("%02d", t.Second())
	case "time":
		return t.Format("15:04:05")
	case "iso8601":
		if _, off := t.Zone(); off == 0 {
			return t.Format("2006-01-02T15:04:05Z")
		}
		return t.Format("2006-01-02T15:04:05-07:00")
	case "std11":
		return t.Format("Mon, 02 Jan 2006 15:04:05 -0700")
	case "zone":
		return t.Format("-0700")
	case "weekday":
		return fmt.Sprint(int(t.Weekday()))
	}
	return ""
}
