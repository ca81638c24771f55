package schema

import (
	"reflect"
	"strings"
	"testing"
)

func TestMigrationsMatchAcrossDialects(t *testing.T) {
	var names [][]string
	for _, d := range Dialects() {
		ms, err := Migrations(d)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if len(ms) == 0 {
			t.Fatalf("%s: no migrations", d)
		}
		var n []string
		for _, m := range ms {
			n = append(n, m.Name)
			if len(m.Statements()) == 0 {
				t.Errorf("%s/%s: no statements", d, m.Name)
			}
		}
		names = append(names, n)
	}
	// A migration number must mean the same change in every dialect.
	for i := 1; i < len(names); i++ {
		if !reflect.DeepEqual(names[0], names[i]) {
			t.Errorf("%s has %v, %s has %v", Dialects()[0], names[0], Dialects()[i], names[i])
		}
	}
}

func TestMigrationsTables(t *testing.T) {
	for _, d := range Dialects() {
		ms, err := Migrations(d)
		if err != nil {
			t.Fatal(err)
		}
		first := strings.Join(ms[0].Statements(), "\n")
		for _, table := range []string{"schema_version", "domains", "accounts", "aliases", "quota_usage"} {
			if !strings.Contains(first, "CREATE TABLE IF NOT EXISTS "+table+" (") {
				t.Errorf("%s: table %s missing from 0001", d, table)
			}
		}
		if len(ms) < 2 || !strings.Contains(strings.Join(ms[1].Statements(), "\n"), "CREATE TABLE IF NOT EXISTS sender_logins (") {
			t.Errorf("%s: table sender_logins missing from 0002", d)
		}
	}
}

func TestUnknownDialect(t *testing.T) {
	if _, err := Migrations("postgres"); err == nil {
		t.Fatal("no error for an unknown dialect")
	}
}

func TestSplitStatements(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"comments only", "-- a\n/* b; */\n", nil},
		{"two", "CREATE TABLE a (x INT);\nCREATE TABLE b (y INT);", []string{"CREATE TABLE a (x INT)", "CREATE TABLE b (y INT)"}},
		{"no trailing semicolon", "SELECT 1", []string{"SELECT 1"}},
		{"semicolon in string", "INSERT INTO t VALUES ('a;b');SELECT 2", []string{"INSERT INTO t VALUES ('a;b')", "SELECT 2"}},
		{"escaped quote", `INSERT INTO t VALUES ('it''s; ok', 'x\';y')`, []string{`INSERT INTO t VALUES ('it''s; ok', 'x\';y')`}},
		{"semicolon in identifier", "SELECT `a;b` FROM t", []string{"SELECT `a;b` FROM t"}},
		{"semicolon in comment", "SELECT 1 -- not; here\n;", []string{"SELECT 1"}},
		{"unterminated string", "SELECT 'abc", []string{"SELECT 'abc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := splitStatements(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
