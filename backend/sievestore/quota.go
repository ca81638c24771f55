package sievestore

import "fmt"

// quota.go: the per-user script quota, Pigeonhole's sieve_quota_max_scripts
// and sieve_quota_max_storage plus the size of one script
// (sieve_max_script_size), which ManageSieve's HAVESPACE and PUTSCRIPT
// check before a script is stored.

// Quota bounds one user's scripts; a zero field is no limit.
type Quota struct {
	MaxScripts int   // number of scripts
	MaxStorage int64 // octets of all scripts together
	MaxSize    int64 // octets of one script
}

// QuotaLimit names the limit a QuotaError hit.
type QuotaLimit int

// The limits of Quota.
const (
	MaxScripts QuotaLimit = iota + 1
	MaxStorage
	MaxSize
)

// QuotaError refuses a script that would exceed the quota.
type QuotaError struct {
	Limit QuotaLimit
	Msg   string
}

func (e *QuotaError) Error() string { return e.Msg }

// CheckQuota says whether a script of size octets stored as name
// (replacing a script of that name, if any) fits q: nil or a *QuotaError.
// Callers that then Put serialise the two, so racing uploads cannot both
// take the last room.
func (s Scripts) CheckQuota(q Quota, name string, size int64) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if q.MaxSize > 0 && size > q.MaxSize {
		return &QuotaError{Limit: MaxSize, Msg: fmt.Sprintf("a script of %d octets exceeds the limit of %d", size, q.MaxSize)}
	}
	if q.MaxScripts <= 0 && q.MaxStorage <= 0 {
		return nil
	}
	list, err := s.List()
	if err != nil {
		return err
	}
	count, total := len(list)+1, size
	for _, in := range list {
		if in.Name == name {
			count--
			continue
		}
		total += in.Size
	}
	if q.MaxScripts > 0 && count > q.MaxScripts {
		return &QuotaError{Limit: MaxScripts, Msg: fmt.Sprintf("at most %d scripts are allowed", q.MaxScripts)}
	}
	if q.MaxStorage > 0 && total > q.MaxStorage {
		return &QuotaError{Limit: MaxStorage, Msg: fmt.Sprintf("the scripts would take %d octets, the limit is %d", total, q.MaxStorage)}
	}
	return nil
}
