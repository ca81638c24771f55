package password

import (
	"context"
	"errors"
	"runtime"
	"testing"
)

// doveadmArgon2id is `doveadm pw -s ARGON2ID -p secret` with Dovecot's
// defaults (64 MiB, 3 passes, 1 lane).
const doveadmArgon2id = "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$9PzGTFlpFkYQDS9ckYRdVA$bgj7OFaxd6S+eXW9HREO5xbCmO8I3EzunFgZal6CNGs"

// countingAdmission admits everything, or refuses with err, and counts.
type countingAdmission struct {
	asked, done int
	err         error
}

func (a *countingAdmission) Admit(ctx context.Context) (func(), error) {
	a.asked++
	if a.err != nil {
		return nil, a.err
	}
	return func() { a.done++ }, nil
}

func TestCaps(t *testing.T) {
	tight := Caps{SHACryptRounds: 5000, BcryptCost: 5, Argon2Memory: 64 << 10, Argon2Passes: 3, Argon2Lanes: 1}
	tests := []struct {
		name    string
		caps    Caps
		stored  string
		wantErr error
	}{
		{"defaults take doveadm's argon2id", Caps{}, doveadmArgon2id, nil},
		{"at the memory cap", tight, doveadmArgon2id, nil},
		{"memory over the cap", tight, "{ARGON2ID}$argon2id$v=19$m=65537,t=3,p=1$9PzGTFlpFkYQDS9ckYRdVA$bgj7OFaxd6S+eXW9HREO5xbCmO8I3EzunFgZal6CNGs", ErrTooCostly},
		{"passes over the cap", tight, "{ARGON2ID}$argon2id$v=19$m=1024,t=4,p=1$9PzGTFlpFkYQDS9ckYRdVA$bgj7OFaxd6S+eXW9HREO5xbCmO8I3EzunFgZal6CNGs", ErrTooCostly},
		{"lanes over the cap", tight, "{ARGON2ID}$argon2id$v=19$m=1024,t=1,p=2$9PzGTFlpFkYQDS9ckYRdVA$bgj7OFaxd6S+eXW9HREO5xbCmO8I3EzunFgZal6CNGs", ErrTooCostly},
		{"default memory cap refuses Dovecot's sensitive 1 GiB", Caps{}, "{ARGON2ID}$argon2id$v=19$m=1048576,t=4,p=1$9PzGTFlpFkYQDS9ckYRdVA$bgj7OFaxd6S+eXW9HREO5xbCmO8I3EzunFgZal6CNGs", ErrTooCostly},
		{"default work cap", Caps{}, "{ARGON2ID}$argon2id$v=19$m=262144,t=5,p=1$9PzGTFlpFkYQDS9ckYRdVA$bgj7OFaxd6S+eXW9HREO5xbCmO8I3EzunFgZal6CNGs", ErrTooCostly},
		{"bcrypt at the cap", tight, "{BLF-CRYPT}$2y$05$VijZ9/9SED5zx1O7RpfsAeeGS.V.3zFl165774hOBUHEk48BD.tlG", nil},
		{"bcrypt over the cap", tight, "{BLF-CRYPT}$2y$06$VijZ9/9SED5zx1O7RpfsAeeGS.V.3zFl165774hOBUHEk48BD.tlG", ErrTooCostly},
		{"sha-crypt over the cap", tight, "{CRYPT}$6$rounds=10000$w6Vb0w0EoxTMOGS$OfElREbwOYNIFM7r6p3mdZgK0u8kF.sD2gbC2xteQohz0r/2Nhmy/FuIo6sZL.MboesSnGqODV1/zABRLN8x0.", ErrTooCostly},
		{"sha-crypt by default", Caps{}, "{CRYPT}$6$rounds=10000$w6Vb0w0EoxTMOGS$OfElREbwOYNIFM7r6p3mdZgK0u8kF.sD2gbC2xteQohz0r/2Nhmy/FuIo6sZL.MboesSnGqODV1/zABRLN8x0.", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &countingAdmission{}
			ok, err := tt.caps.Verify(WithAdmission(context.Background(), a), tt.stored, "secret")
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if ok || a.asked != 0 {
					t.Fatalf("refused hash: match %v, admissions asked %d; want no match and no work", ok, a.asked)
				}
				return
			}
			if !ok || a.asked != 1 || a.done != 1 {
				t.Fatalf("match %v, admissions %d asked %d done; want a match and one admission", ok, a.asked, a.done)
			}
		})
	}
}

// A hash over the caps is refused without allocating what it asks for:
// an Argon2 hash that wants 4 GiB costs a few hundred bytes of parsing.
func TestCapsRefuseWithoutAllocating(t *testing.T) {
	const greedy = "{ARGON2ID}$argon2id$v=19$m=4194304,t=3,p=1$9PzGTFlpFkYQDS9ckYRdVA$bgj7OFaxd6S+eXW9HREO5xbCmO8I3EzunFgZal6CNGs"
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, err := (Caps{}).Verify(context.Background(), greedy, "secret"); !errors.Is(err, ErrTooCostly) {
			t.Fatalf("Verify: %v, want ErrTooCostly", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 100; per > 4<<10 {
		t.Fatalf("refusing a 4 GiB hash allocated %d bytes per call", per)
	}
}

func TestAdmission(t *testing.T) {
	stored, err := Hash("SSHA", "secret")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("refused", func(t *testing.T) {
		busy := errors.New("busy")
		a := &countingAdmission{err: busy}
		ok, err := Caps{}.Verify(WithAdmission(context.Background(), a), stored, "secret")
		if ok || !errors.Is(err, ErrNotAdmitted) || !errors.Is(err, busy) {
			t.Fatalf("Verify = %v, %v; want no match, ErrNotAdmitted wrapping the cause", ok, err)
		}
	})
	t.Run("nothing to verify", func(t *testing.T) {
		a := &countingAdmission{}
		ctx := WithAdmission(context.Background(), a)
		for _, plain := range []string{"", string(make([]byte, MaxPasswordLen+1))} {
			if ok, err := (Caps{}).Verify(ctx, stored, plain); ok || err != nil {
				t.Fatalf("Verify(%d bytes) = %v, %v", len(plain), ok, err)
			}
		}
		if a.asked != 0 {
			t.Fatalf("admissions asked %d for passwords that cannot match", a.asked)
		}
	})
	t.Run("without an admission", func(t *testing.T) {
		if ok, err := (Caps{}).Verify(context.Background(), stored, "secret"); !ok || err != nil {
			t.Fatalf("Verify = %v, %v", ok, err)
		}
	})
}

func TestCapsCheck(t *testing.T) {
	for _, c := range []Caps{{BcryptCost: 32}, {Argon2Lanes: 256}} {
		if err := c.Check(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if err := DefaultCaps().Check(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
