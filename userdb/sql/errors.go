package sqldir

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/go-sql-driver/mysql"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/vmaild/vmaild/userdb"
)

// MariaDB/MySQL server error numbers that mean "the server cannot answer
// now", not "the answer is no": connection limits, shutdown, network and
// lock trouble, read-only fail-over, resource exhaustion, and the Galera
// "node not ready" answer.
var mysqlTemporary = map[uint16]bool{
	1021: true, // ER_DISK_FULL
	1037: true, // ER_OUTOFMEMORY
	1038: true, // ER_OUT_OF_SORTMEMORY
	1040: true, // ER_CON_COUNT_ERROR (too many connections)
	1041: true, // ER_OUT_OF_RESOURCES
	1044: true, // ER_DBACCESS_DENIED_ERROR: a grant problem the admin must fix; defer, never bounce
	1045: true, // ER_ACCESS_DENIED_ERROR: likewise (vmaild's own login to the database)
	1047: true, // ER_UNKNOWN_COM_ERROR: Galera node not ready (WSREP)
	1053: true, // ER_SERVER_SHUTDOWN
	1077: true, // ER_NORMAL_SHUTDOWN
	1078: true, // ER_GOT_SIGNAL
	1079: true, // ER_SHUTDOWN_COMPLETE
	1114: true, // ER_RECORD_FILE_FULL
	1129: true, // ER_HOST_IS_BLOCKED
	1130: true, // ER_HOST_NOT_PRIVILEGED
	1135: true, // ER_CANT_CREATE_THREAD
	1152: true, // ER_ABORTING_CONNECTION
	1154: true, // ER_NET_READ_ERROR_FROM_PIPE
	1155: true, // ER_NET_FCNTL_ERROR
	1156: true, // ER_NET_PACKETS_OUT_OF_ORDER
	1157: true, // ER_NET_UNCOMPRESS_ERROR
	1158: true, // ER_NET_READ_ERROR
	1159: true, // ER_NET_READ_INTERRUPTED
	1160: true, // ER_NET_ERROR_ON_WRITE
	1161: true, // ER_NET_WRITE_INTERRUPTED
	1203: true, // ER_TOO_MANY_USER_CONNECTIONS
	1205: true, // ER_LOCK_WAIT_TIMEOUT
	1213: true, // ER_LOCK_DEADLOCK
	1226: true, // ER_USER_LIMIT_REACHED
	1290: true, // ER_OPTION_PREVENTS_STATEMENT (--read-only during fail-over)
	1317: true, // ER_QUERY_INTERRUPTED
	1615: true, // ER_NEED_REPREPARE
	1792: true, // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
	1836: true, // ER_READ_ONLY_MODE
	1927: true, // ER_CONNECTION_KILLED
	1969: true, // ER_STATEMENT_TIMEOUT (max_statement_time)
	3024: true, // ER_QUERY_TIMEOUT (MySQL max_execution_time)
	4031: true, // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
}

// SQLite primary result codes that mean "try later".
var sqliteTemporary = map[int]bool{
	sqlite3.SQLITE_BUSY:      true,
	sqlite3.SQLITE_LOCKED:    true,
	sqlite3.SQLITE_NOMEM:     true,
	sqlite3.SQLITE_IOERR:     true,
	sqlite3.SQLITE_FULL:      true,
	sqlite3.SQLITE_CANTOPEN:  true,
	sqlite3.SQLITE_PROTOCOL:  true,
	sqlite3.SQLITE_INTERRUPT: true,
	sqlite3.SQLITE_READONLY:  true,
}

// classify wraps err with op, as userdb.ErrUnavailable when it means the
// database is unreachable or busy, as userdb.ErrExists for a duplicate key.
// Anything else (a syntax error in an override, a missing table) is
// returned wrapped but unclassified: it is neither "no" nor a passing
// outage, and must be fixed by the admin.
func classify(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case temporary(err):
		return userdb.Unavailable(op, err)
	case isDuplicate(err):
		return fmt.Errorf("%s: %w: %w", op, userdb.ErrExists, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func temporary(err error) bool {
	// A cancelled context is "try later" too: the client went away, and
	// its half-done lookup must not read as a "no".
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, mysql.ErrPktSync) || errors.Is(err, mysql.ErrPktSyncMul) ||
		errors.Is(err, mysql.ErrMalformPkt) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return mysqlTemporary[me.Number]
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return sqliteTemporary[se.Code()&0xff]
	}
	return false
}

func isDeadlock(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1213
}

func isDuplicate(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062 // ER_DUP_ENTRY
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
	}
	return false
}

// isForeignKey reports a foreign key violation: a referenced domain is
// missing (insert) or still referenced (delete).
func isForeignKey(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1451 || me.Number == 1452 || me.Number == 1216 || me.Number == 1217
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	return false
}

// isNoTable reports that a table does not exist yet (Migrate's first run).
func isNoTable(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1146 // ER_NO_SUCH_TABLE
	}
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_ERROR &&
		strings.Contains(se.Error(), "no such table")
}

// isDuplicateColumn reports MySQL's answer to adding a column that exists:
// MySQL commits each ALTER TABLE by itself, so after a migration was
// interrupted it is the mark of a statement that already ran.
func isDuplicateColumn(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1060 // ER_DUP_FIELDNAME
}
