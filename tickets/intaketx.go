package tickets

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// IntakeTx is the transaction of one mail's intake, built to take few round
// trips to PostgreSQL: BeginIntake sends BEGIN with the statements every
// delivery starts with, writes whose results intake does not need wait in a
// queue (Queue*), and Commit sends the queue with COMMIT. Anything else run
// on it (Exec, Query, QueryRow, Begin) first sends the queue, so statements
// always run in the order they were asked for and a read sees every earlier
// write. It is a DBTX: On(tx) gives a Store inside the transaction.
type IntakeTx struct {
	conn   *pgxpool.Conn
	tx     pgx.Tx
	queue  *pgx.Batch
	what   []string // what each queued statement does, for errors
	notify []string // channels to notify after the commit
	done   bool
}

// Notify asks for a notification on channel (EventsChannel,
// MailOutboxChannel) once the transaction has committed. The outbox
// triggers do not notify inside an intake transaction (migration 0008):
// whoever writes to an outbox in it must call Notify.
func (t *IntakeTx) Notify(channel string) {
	if !slices.Contains(t.notify, channel) {
		t.notify = append(t.notify, channel)
	}
}

// Exec sends the queue, then runs sql.
func (t *IntakeTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.flush(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.tx.Exec(ctx, sql, args...)
}

// Query sends the queue, then runs sql.
func (t *IntakeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.tx.Query(ctx, sql, args...)
}

// QueryRow sends the queue, then runs sql.
func (t *IntakeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.flush(ctx); err != nil {
		return errRow{err}
	}
	return t.tx.QueryRow(ctx, sql, args...)
}

// Begin sends the queue, then starts a savepoint.
func (t *IntakeTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.tx.Begin(ctx)
}

// largeValue is the size from which a text or bytea argument makes a
// statement go by execLarge.
const largeValue = 256 << 10

// hasLarge reports whether one of args is a string or []byte of at least
// largeValue bytes.
func hasLarge(args []any) bool {
	for _, a := range args {
		switch v := a.(type) {
		case string:
			if len(v) >= largeValue {
				return true
			}
		case []byte:
			if len(v) >= largeValue {
				return true
			}
		}
	}
	return false
}

// execLarge sends the queue, then runs sql with args on its own, copying
// each argument once on its way to the wire: pgx encodes every argument
// into a buffer of its own before the protocol message, and a batch holds
// all its statements' messages until it is sent, which for a mail of 25 MB
// is 25 MB more per copy. A []byte goes as binary bytea; strings, integers,
// booleans and string slices go as text, typed by the statement; a nil
// slice or pointer is NULL.
func (t *IntakeTx) execLarge(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.flush(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	values := make([][]byte, len(args))
	oids := make([]uint32, len(args))
	formats := make([]int16, len(args))
	for i, a := range args {
		if b, ok := a.([]byte); ok {
			values[i], oids[i], formats[i] = b, pgtype.ByteaOID, pgx.BinaryFormatCode
			continue
		}
		v, err := textArg(t.tx.Conn().TypeMap(), reflect.ValueOf(a))
		if err != nil {
			return pgconn.CommandTag{}, fmt.Errorf("argument %d: %w", i+1, err)
		}
		values[i] = v
	}
	return t.tx.Conn().PgConn().ExecParams(ctx, sql, values, oids, formats, nil).Close()
}

// textArg is the text form of an argument of execLarge; nil is NULL.
func textArg(m *pgtype.Map, v reflect.Value) ([]byte, error) {
	switch v.Kind() {
	case reflect.Invalid:
		return nil, nil
	case reflect.Pointer:
		if v.IsNil() {
			return nil, nil
		}
		return textArg(m, v.Elem())
	case reflect.String:
		s := v.String()
		if s == "" {
			return []byte{}, nil
		}
		// Read in place: the protocol message is the one copy.
		return unsafe.Slice(unsafe.StringData(s), len(s)), nil
	case reflect.Int, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(nil, v.Int(), 10), nil
	case reflect.Bool:
		return strconv.AppendBool(nil, v.Bool()), nil
	case reflect.Slice:
		if ss, ok := v.Interface().([]string); ok {
			if ss == nil {
				ss = []string{}
			}
			return m.Encode(pgtype.TextArrayOID, pgx.TextFormatCode, ss, nil)
		}
	}
	return nil, fmt.Errorf("no text form for %s", v.Type())
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// queued adds a statement to the queue.
func (t *IntakeTx) queued(what, sql string, args ...any) {
	if t.queue == nil {
		t.queue = &pgx.Batch{}
	}
	t.queue.Queue(sql, args...)
	t.what = append(t.what, what)
}

// flush sends the queued statements in one round trip.
func (t *IntakeTx) flush(ctx context.Context) error {
	if t.queue == nil || t.queue.Len() == 0 {
		return nil
	}
	b, what := t.queue, t.what
	t.queue, t.what = nil, nil
	br := t.tx.SendBatch(ctx, b)
	err := readQueued(br, what)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// readQueued reads the results of queued statements, naming the first that
// failed.
func readQueued(br pgx.BatchResults, what []string) error {
	for _, w := range what {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("%s: %w", w, err)
		}
	}
	return nil
}

// Commit sends the queue, COMMIT and the notifications asked for in one
// round trip and gives the connection back to the pool. On failure nothing
// was kept. The notifications run after the commit, in a transaction of
// their own that writes nothing, so the commit does not hold PostgreSQL's
// notification lock while its WAL is flushed; one that fails is not an
// error, since listeners also poll.
func (t *IntakeTx) Commit(ctx context.Context) error {
	if t.done {
		return pgx.ErrTxClosed
	}
	b, what := t.queue, t.what
	t.queue, t.what = nil, nil
	if b == nil {
		b = &pgx.Batch{}
	}
	b.Queue("commit")
	for _, c := range t.notify {
		b.Queue(`SELECT pg_notify($1, '')`, c)
	}
	br := t.tx.SendBatch(ctx, b)
	err := readQueued(br, what)
	if err == nil {
		var tag pgconn.CommandTag
		if tag, err = br.Exec(); err == nil && tag.String() != "COMMIT" {
			err = pgx.ErrTxCommitRollback
		}
		if err != nil {
			err = fmt.Errorf("commit: %w", err)
		}
	}
	if err != nil {
		br.Close()
		t.Rollback(ctx)
		return err
	}
	t.done = true
	// Committed: a failure now leaves only the notifications undone and
	// the connection in doubt, and the pool drops a closed one.
	_ = br.Close()
	t.conn.Release()
	return nil
}

// Rollback ends the transaction without keeping anything and gives the
// connection back; a connection left in doubt is closed, not reused. It is
// safe to call after Commit.
func (t *IntakeTx) Rollback(ctx context.Context) {
	if t.done {
		return
	}
	t.done = true
	t.queue, t.what = nil, nil
	if pc := t.conn.Conn().PgConn(); !pc.IsClosed() && pc.TxStatus() != 'I' {
		// pgx closes the connection when ROLLBACK fails; the pool
		// drops a connection still inside a transaction.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = t.tx.Rollback(rctx)
		cancel()
	}
	t.conn.Release()
}
