// Package sqldir is vmaild's SQL user directory: accounts, domains, aliases,
// the sender map and quota usage in MySQL/MariaDB (production) or SQLite
// (the embedded default), in the schema of package schema.
//
// An admin with an existing database (PostfixAdmin's domain/mailbox/alias
// tables, say) can point vmaild at it by overriding the read queries in
// Config.Queries; see POSTFIXADMIN.md. The admin operations (AccountAdmin,
// DomainAdmin) only work on vmaild's own schema and refuse with
// ErrForeignSchema when the queries they would bypass are overridden.
//
// Every statement is parameterised; quota usage changes only through atomic
// SQL increments. Failures that mean "the database is not answering" are
// wrapped with userdb.ErrUnavailable, so mail is deferred, never bounced.
package sqldir

import (
	"context"
	gosql "database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/vmaild/vmaild/userdb/password"
)

// Config selects and tunes the database. The zero value of every field but
// DSN works.
type Config struct {
	// Driver is "sqlite" (default) or "mysql" (MySQL and MariaDB).
	Driver string `yaml:"driver" mapstructure:"driver" help:"sqlite (embedded) or mysql (MySQL and MariaDB)"`
	// DSN is, for sqlite, the database file path; vmaild adds the pragmas it
	// needs (WAL, busy_timeout, foreign_keys). For mysql it is a
	// go-sql-driver DSN: user:password@tcp(host:3306)/vmaild.
	DSN string `yaml:"dsn" mapstructure:"dsn" help:"sqlite: the database file (default data_dir/vmaild.db); mysql: user:password@tcp(host:3306)/vmaild"`
	// MaxOpenConns caps the connection pool; 0 means 16 for mysql and 4
	// for sqlite (SQLite serialises writers anyway).
	MaxOpenConns int `yaml:"max_open_conns" mapstructure:"max_open_conns" help:"connection pool size; 0: 16 for mysql, 4 for sqlite"`
	// Timeout bounds every operation as a whole: waiting for a pooled
	// connection, the mysql dial, the statements, and SQLite's wait for a
	// lock; 0 means 5s. A timeout is reported as ErrUnavailable.
	Timeout time.Duration `yaml:"timeout" mapstructure:"timeout" help:"bound on every operation as a whole (waiting for a pooled connection, the mysql dial, the statements, SQLite's wait for a lock); a lookup that also asks LDAP is bounded by the longer of this and ldap.timeout; 0: 5s"`
	// Queries overrides the built-in queries, for existing schemas.
	Queries Queries `yaml:"queries" mapstructure:"queries"`
	// Logger receives the mysql driver's own complaints (dropped idle
	// connections and the like); nil means slog.Default().
	Logger *slog.Logger `yaml:"-" mapstructure:"-"`
}

// Defaults used for zero Config fields.
const (
	DefaultTimeout       = 5 * time.Second
	defaultMySQLConns    = 16
	defaultSQLiteConns   = 4
	driverMySQL          = "mysql"
	driverSQLite         = "sqlite"
	maxStatementAttempts = 3
)

// Errors of this package; they wrap no userdb class because they describe
// the installation, not the user.
var (
	// ErrForeignSchema: an admin operation was asked of a directory whose
	// read queries are overridden, so vmaild does not own the tables.
	ErrForeignSchema = errors.New("queries are overridden: manage this directory with the tool that owns its schema")
	// ErrDomainInUse: DeleteDomain found accounts or alias domains that
	// still depend on the domain.
	ErrDomainInUse = errors.New("domain in use")
)

// DB is an SQL user directory. It is safe for concurrent use and survives
// database restarts: connections are re-established on demand.
type DB struct {
	db      *gosql.DB
	driver  string
	timeout time.Duration
	q       compiledQueries
	// foreignAccounts / foreignDomains are set when the account or domain
	// read queries are overridden; admin writes would go to tables nobody
	// reads, so they are refused.
	foreignAccounts bool
	foreignDomains  bool
	// foreignSenders is set when the sender_logins query is overridden.
	foreignSenders bool
	// hashCaps bounds the stored password hashes Authenticate verifies.
	hashCaps password.Caps

	mu    sync.Mutex
	stmts map[*query]*gosql.Stmt
}

// Open checks the configuration, compiles the queries and opens the
// connection pool. For sqlite it also opens the file, so a wrong path fails
// here; for mysql it does not connect, so vmaild can start (and defer mail)
// while the database is down. Call Migrate before using vmaild's schema.
func Open(ctx context.Context, c Config) (*DB, error) {
	if c.Driver == "" {
		c.Driver = driverSQLite
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	d := &DB{driver: c.Driver, timeout: c.Timeout, stmts: map[*query]*gosql.Stmt{}}
	q, err := compileQueries(c.Driver, c.Queries)
	if err != nil {
		return nil, err
	}
	d.q = q
	d.foreignAccounts = c.Queries.Account != "" || c.Queries.Password != ""
	d.foreignDomains = c.Queries.Domain != "" || c.Queries.Aliases != ""
	d.foreignSenders = c.Queries.SenderLogins != ""

	switch c.Driver {
	case driverMySQL:
		cfg, err := mysql.ParseDSN(c.DSN)
		if err != nil {
			// The DSN holds a password: report the parser's reason only.
			return nil, fmt.Errorf("sql: mysql dsn: %w", err)
		}
		// ReserveUsage decides by RowsAffected; with found rows a
		// reservation of 0 bytes that changes nothing still counts as
		// matched.
		cfg.ClientFoundRows = true
		// A read-only server (a failed-over replica) is "try another
		// connection", not an error for the user.
		cfg.RejectReadOnly = true
		if cfg.Timeout == 0 {
			cfg.Timeout = c.Timeout
		}
		if c.Logger == nil {
			c.Logger = slog.Default()
		}
		cfg.Logger = driverLogger{c.Logger}
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, fmt.Errorf("sql: mysql connector: %w", err)
		}
		d.db = gosql.OpenDB(boundedConnector{conn, c.Timeout})
		if c.MaxOpenConns <= 0 {
			c.MaxOpenConns = defaultMySQLConns
		}
	case driverSQLite:
		dsn, err := sqliteDSN(c.DSN, c.Timeout)
		if err != nil {
			return nil, err
		}
		d.db, err = gosql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("sql: sqlite open %q: %w", c.DSN, err)
		}
		if c.MaxOpenConns <= 0 {
			c.MaxOpenConns = defaultSQLiteConns
		}
	default:
		return nil, fmt.Errorf("sql: unknown driver %q (want mysql or sqlite)", c.Driver)
	}
	d.db.SetMaxOpenConns(c.MaxOpenConns)
	d.db.SetMaxIdleConns(c.MaxOpenConns)
	// Recycle connections now and then so a server-side wait_timeout never
	// hands us a dead one at a busy moment.
	d.db.SetConnMaxIdleTime(5 * time.Minute)

	if c.Driver == driverSQLite {
		if err := d.Ping(ctx); err != nil {
			d.db.Close()
			return nil, fmt.Errorf("sql: sqlite %q: %w", c.DSN, err)
		}
	}
	return d, nil
}

// sqliteDSN turns a file path into a modernc DSN with the pragmas vmaild
// relies on: WAL so readers never wait for the writer, a busy timeout so a
// writer waits for another instead of failing, foreign keys on (SQLite
// ignores them by default), and IMMEDIATE transactions so a transaction
// that will write takes the lock up front instead of failing on upgrade.
// The busy timeout is the operation timeout: a writer waits for a lock as
// long as the operation may take, and no longer.
func sqliteDSN(path string, timeout time.Duration) (string, error) {
	switch {
	case path == "":
		return "", errors.New("sql: sqlite dsn: a database file path is required")
	case strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:"):
		// Each pooled connection would get its own private database.
		return "", fmt.Errorf("sql: sqlite dsn %q: must be a file path", path)
	case strings.ContainsAny(path, "?\x00"):
		return "", fmt.Errorf("sql: sqlite dsn %q: a file path may not contain '?' or NUL", path)
	}
	return path + "?_pragma=busy_timeout(" + strconv.FormatInt(timeout.Milliseconds(), 10) + ")" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(1)" +
		"&_pragma=synchronous(NORMAL)" +
		"&_txlock=immediate", nil
}

// boundedConnector bounds every new connection, handshake included, by
// the operation timeout. An operation's own connections are bounded by its
// context already, but database/sql also opens connections in the
// background for callers waiting on a full pool, with no deadline: a
// server that accepts and never greets would hold those pool slots until
// it wakes up, and every later operation would wait for them in vain.
type boundedConnector struct {
	driver.Connector
	timeout time.Duration
}

func (c boundedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.Connector.Connect(ctx)
}

// driverLogger hands go-sql-driver/mysql's messages to slog instead of
// its default unstructured stderr logger.
type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Print(v ...any) {
	d.l.Warn("mysql driver", "msg", strings.TrimSpace(fmt.Sprint(v...)))
}

// Close closes the connection pool.
func (d *DB) Close() error {
	d.mu.Lock()
	for _, s := range d.stmts {
		s.Close()
	}
	d.stmts = map[*query]*gosql.Stmt{}
	d.mu.Unlock()
	return d.db.Close()
}

// Ping checks that the database answers; a health check for `vmaild serve`.
func (d *DB) Ping(ctx context.Context) error {
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	return classify("sql ping", d.db.PingContext(ctx))
}

// Timeout is the bound on one operation (userdb.Bounded).
func (d *DB) Timeout() time.Duration { return d.timeout }

// opContext bounds one operation by the configured timeout.
func (d *DB) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.timeout)
}

// prepared returns q prepared on the pool, preparing it on first use. A
// failed prepare (database down) is not cached, so the next call tries
// again. database/sql re-prepares on new connections by itself, which is
// what makes a server restart invisible here.
func (d *DB) prepared(ctx context.Context, q *query) (*gosql.Stmt, error) {
	d.mu.Lock()
	s := d.stmts[q]
	d.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := d.db.PrepareContext(ctx, q.sql)
	if err != nil {
		return nil, classify("sql prepare "+q.name, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.stmts[q]; old != nil {
		s.Close()
		return old, nil
	}
	d.stmts[q] = s
	return s, nil
}

// queryRow runs a single-row query.
func (d *DB) queryRow(ctx context.Context, q *query, p params) (*gosql.Row, error) {
	s, err := d.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryRowContext(ctx, q.args(p)...), nil
}

// exec runs a statement, retrying when the database picked it as a
// deadlock victim: it was rolled back whole, so running it again is safe.
func (d *DB) exec(ctx context.Context, q *query, p params) (gosql.Result, error) {
	s, err := d.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	args := q.args(p)
	for attempt := 1; ; attempt++ {
		res, err := s.ExecContext(ctx, args...)
		if err == nil || attempt == maxStatementAttempts || !isDeadlock(err) {
			return res, err
		}
	}
}
