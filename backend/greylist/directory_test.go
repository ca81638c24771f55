package greylist_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vmaild/vmaild/backend/greylist"
	"github.com/vmaild/vmaild/backend/greylist/greylisttest"
	"github.com/vmaild/vmaild/internal/testsrv"
	sqldir "github.com/vmaild/vmaild/userdb/sql"
)

// TestDirectoryRules: the greylist table, created by the schema's
// migrations, keeps triplets as the rules need in SQLite and MariaDB.
func TestDirectoryRules(t *testing.T) {
	for _, tc := range []struct {
		driver string
		dsn    func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "vmaild.db") }},
		{"mysql", func(t *testing.T) string { return testsrv.StartMariaDB(t).CreateDatabase("greylist") }},
	} {
		t.Run(tc.driver, func(t *testing.T) {
			ctx := context.Background()
			db, err := sqldir.Open(ctx, sqldir.Config{Driver: tc.driver, DSN: tc.dsn(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			greylisttest.Run(t, greylist.Directory{DB: db})
		})
	}
}
