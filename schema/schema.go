// Package schema holds vmaild's SQL schema as numbered migrations, one
// directory per SQL dialect (mysql/ for MySQL and MariaDB, sqlite/ for the
// embedded default), compiled into the binary so `vmaild` can create and
// upgrade its database without files beside it. Both dialects describe the
// same logical tables; a migration number means the same change in both.
//
// The OpenLDAP schema in ldap/ is documentation for directory admins and is
// not embedded here.
package schema

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed mysql/*.sql sqlite/*.sql
var files embed.FS

// Dialects lists the SQL dialects a schema exists for.
func Dialects() []string { return []string{"mysql", "sqlite"} }

// Migration is one numbered step of the schema.
type Migration struct {
	Version int
	// Name is the file name, e.g. "0001_init.sql"; it is recorded in
	// schema_version so an admin can see what ran.
	Name string
	SQL  string
}

// Migrations returns a dialect's migrations in version order. File names
// must start with a positive number and an underscore; a gap or a duplicate
// number is an error, because it means a file went missing.
func Migrations(dialect string) ([]Migration, error) {
	entries, err := fs.ReadDir(files, dialect)
	if err != nil {
		return nil, fmt.Errorf("schema: unknown dialect %q", dialect)
	}
	var ms []Migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("schema: %s/%s: name must be NNNN_description.sql", dialect, e.Name())
		}
		b, err := files.ReadFile(path.Join(dialect, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("schema: %w", err)
		}
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("schema: %s: expected migration %d, found %s", dialect, i+1, m.Name)
		}
	}
	return ms, nil
}

// Statements splits the migration into single statements, because drivers
// run one statement per Exec (go-sql-driver/mysql without multiStatements).
// It splits on semicolons outside quotes and comments and drops comments
// and empty statements.
func (m Migration) Statements() []string {
	return splitStatements(m.SQL)
}

func splitStatements(src string) []string {
	var (
		out []string
		cur strings.Builder
	)
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '-' && i+1 < len(src) && src[i+1] == '-':
			// Line comment: skip to end of line.
			for i < len(src) && src[i] != '\n' {
				i++
			}
			cur.WriteByte('\n')
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				i = len(src)
			} else {
				i += 2 + end + 1
			}
			cur.WriteByte(' ')
		case c == '\'' || c == '"' || c == '`':
			// Copy a quoted string or identifier whole; a doubled quote
			// inside is an escaped quote and the loop handles it as two
			// adjacent strings.
			j := i + 1
			for j < len(src) && src[j] != c {
				if src[j] == '\\' && c == '\'' {
					j++
				}
				j++
			}
			if j >= len(src) {
				j = len(src) - 1
			}
			cur.WriteString(src[i : j+1])
			i = j
		case c == ';':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}
