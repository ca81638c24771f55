package sqldir

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/vmaild/vmaild/userdb"
)

func TestCompile(t *testing.T) {
	tests := []struct {
		name, in string
		allowed  []string
		wantSQL  string
		wantArgs []any
		err      string
	}{
		{"one input", "SELECT a FROM t WHERE x = :address", []string{"address"},
			"SELECT a FROM t WHERE x = ?", []any{"a@b.example"}, ""},
		{"input twice", "SELECT :address, :domain WHERE y = :address", []string{"address", "domain"},
			"SELECT ?, ? WHERE y = ?", []any{"a@b.example", "b.example", "a@b.example"}, ""},
		{"colon in string literal", "SELECT ':address', \":x\", `:y` FROM t WHERE a = :address", []string{"address"},
			"SELECT ':address', \":x\", `:y` FROM t WHERE a = ?", []any{"a@b.example"}, ""},
		{"escaped quote in literal", `SELECT 'it\'s :x', 'a''b' WHERE a = :address`, []string{"address"},
			`SELECT 'it\'s :x', 'a''b' WHERE a = ?`, []any{"a@b.example"}, ""},
		{"comments", "SELECT 1 -- :nope\n/* :nope */ # :nope\nWHERE a = :address", []string{"address"},
			"SELECT 1 \n  \nWHERE a = ?", []any{"a@b.example"}, ""},
		{"assignment and cast are not inputs", "SELECT @v := 1, x::text WHERE a = :address", []string{"address"},
			"SELECT @v := 1, x::text WHERE a = ?", []any{"a@b.example"}, ""},
		{"unknown input", "SELECT 1 WHERE a = :adress", []string{"address"}, "", nil, "unknown input :adress"},
		{"input not allowed here", "SELECT 1 WHERE a = :password", []string{"address"}, "", nil, "unknown input :password"},
		{"positional refused", "SELECT 1 WHERE a = ?", []string{"address"}, "", nil, "named inputs"},
		{"unterminated literal", "SELECT 'abc WHERE a = :address", []string{"address"}, "", nil, "unterminated"},
		{"unterminated comment", "SELECT 1 /* x", []string{"address"}, "", nil, "unterminated comment"},
		{"empty", "  -- nothing\n", []string{"address"}, "", nil, "empty"},
	}
	p := params{address: "a@b.example", domain: "b.example"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := compile("test", tt.in, tt.allowed...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if q.sql != tt.wantSQL {
				t.Errorf("sql = %q, want %q", q.sql, tt.wantSQL)
			}
			if got := q.args(p); fmt.Sprint(got) != fmt.Sprint(tt.wantArgs) {
				t.Errorf("args = %v, want %v", got, tt.wantArgs)
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		c    Config
		err  string
	}{
		{"unknown driver", Config{Driver: "postgres", DSN: "x"}, "unknown driver"},
		{"sqlite without path", Config{}, "path is required"},
		{"sqlite in memory", Config{DSN: ":memory:"}, "must be a file path"},
		{"sqlite uri", Config{DSN: "file:x.db?mode=memory"}, "must be a file path"},
		{"sqlite path with ?", Config{DSN: filepath.Join(dir, "a?b.db")}, "may not contain"},
		{"sqlite directory missing", Config{DSN: filepath.Join(dir, "no", "such", "dir", "x.db")}, "sqlite"},
		{"mysql bad dsn", Config{Driver: "mysql", DSN: "vmail:s3cr3t-pw@tcp(127.0.0.1:3306)"}, "mysql dsn"},
		{"bad override", Config{DSN: filepath.Join(dir, "ok.db"), Queries: Queries{Account: "SELECT * FROM users WHERE id = :id"}}, "unknown input :id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Open(context.Background(), tt.c)
			if err == nil {
				d.Close()
				t.Fatalf("opened %+v", tt.c)
			}
			if !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
			if strings.Contains(err.Error(), "s3cr3t-pw") {
				t.Fatalf("error leaks the DSN password: %v", err)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error // nil: neither unavailable nor exists
	}{
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), userdb.ErrUnavailable},
		{"bad conn", driver.ErrBadConn, userdb.ErrUnavailable},
		{"invalid conn", mysql.ErrInvalidConn, userdb.ErrUnavailable},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, userdb.ErrUnavailable},
		{"deadlock", &mysql.MySQLError{Number: 1213}, userdb.ErrUnavailable},
		{"lock wait timeout", &mysql.MySQLError{Number: 1205}, userdb.ErrUnavailable},
		{"too many connections", &mysql.MySQLError{Number: 1040}, userdb.ErrUnavailable},
		{"shutdown", &mysql.MySQLError{Number: 1053}, userdb.ErrUnavailable},
		{"read only", &mysql.MySQLError{Number: 1290}, userdb.ErrUnavailable},
		{"duplicate", &mysql.MySQLError{Number: 1062}, userdb.ErrExists},
		{"syntax error is the admin's", &mysql.MySQLError{Number: 1064}, nil},
		{"no such table is the admin's", &mysql.MySQLError{Number: 1146}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify("op", tt.err)
			if !errors.Is(err, tt.err) {
				t.Errorf("cause lost: %v", err)
			}
			for _, class := range []error{userdb.ErrUnavailable, userdb.ErrExists, userdb.ErrNotFound} {
				if errors.Is(err, class) != (class == tt.want) {
					t.Errorf("%v: is %v = %v", err, class, errors.Is(err, class))
				}
			}
		})
	}
}
