package testsrv

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
)

// TestMariaDBStopStart proves the helper's contract: the DSN works, Stop
// makes the server unreachable, and Start brings back the same data on the
// same port.
func TestMariaDBStopStart(t *testing.T) {
	m := StartMariaDB(t)
	db, err := sql.Open("mysql", m.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if _, err := db.ExecContext(ctx, "CREATE TABLE kept (v VARCHAR(10)) ENGINE=InnoDB"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO kept VALUES ('x')"); err != nil {
		t.Fatalf("insert: %v", err)
	}

	m.Stop()
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("ping succeeded while mariadbd is stopped")
	}

	m.Start()
	var v string
	if err := db.QueryRowContext(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "x" {
		t.Fatalf("after restart: v=%q err=%v", v, err)
	}

	dsn := m.CreateDatabase("other")
	db2, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if err := db2.PingContext(ctx); err != nil {
		t.Fatalf("second database: %v", err)
	}
}
