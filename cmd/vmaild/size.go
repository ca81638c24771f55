package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits are the binary multiples a size may carry, largest first so
// that formatByteSize picks the shortest spelling. K is 1024, as in
// Dovecot's and Postfix's quota settings and in what `du -h` prints.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}}

// parseByteSize is the one reader of sizes, for configuration keys and for
// the command line alike: "1024", "500M", "1.5G", "10 MB", "2GiB"; "0" is
// zero (which a quota reads as unlimited). A fraction is rounded down to a
// whole byte.
func parseByteSize(s string) (int64, error) {
	orig := s
	s = strings.ToUpper(strings.TrimSpace(s))
	s = strings.TrimSuffix(s, "B")
	mult := int64(1)
	for _, u := range sizeUnits {
		rest, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			rest, ok = strings.CutSuffix(s, u.suffix+"I") // GiB
		}
		if ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	bad := fmt.Errorf("size %q: want a number of bytes, or a number with K, M, G or T (1024-based): 10M, 1.5G", orig)
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" || strings.ContainsAny(whole, "+-") || (hasFrac && (frac == "" || len(frac) > 6 || strings.ContainsAny(frac, "+-"))) {
		return 0, bad
	}
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, bad
	}
	n *= mult
	if hasFrac {
		f, err := strconv.ParseUint(frac, 10, 64)
		if err != nil {
			return 0, bad
		}
		// f < 10^6 < 2^20 and mult <= 2^40: the product fits.
		add := int64(f * uint64(mult) / uint64(math.Pow10(len(frac))))
		if n > math.MaxInt64-add {
			return 0, bad
		}
		n += add
	}
	return n, nil
}

// formatByteSize writes n the way parseByteSize reads it back exactly: in
// the largest unit that takes at most three decimals ("50M", "1.5G",
// "976.563K" never: that would round), else in bytes.
func formatByteSize(n int64) string {
	if n < 0 {
		return strconv.FormatInt(n, 10)
	}
	for _, u := range sizeUnits {
		if n < u.mult {
			continue
		}
		// Exact to three decimals: 1000*n is a whole multiple of mult.
		if n <= math.MaxInt64/1000 && (n*1000)%u.mult == 0 {
			milli := n * 1000 / u.mult
			s := strconv.FormatInt(milli/1000, 10)
			if r := milli % 1000; r != 0 {
				s += strings.TrimRight(fmt.Sprintf(".%03d", r), "0")
			}
			return s + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
