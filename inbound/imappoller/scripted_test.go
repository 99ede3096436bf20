package imappoller_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"ticketd/inbound/imappoller"
	"ticketd/pgtest"
	"ticketd/tickets"
)

// scriptedIMAP is an IMAP4rev1 server of a few lines, for what real servers
// do and go-imap's in-memory server does not: its mailbox holds the mails
// given, the message at sequence number n having UID n, and answer answers
// every FETCH and STORE command line (UID or not) with whatever it
// returns, the tagged answer included. The rest answers OK.
func scriptedIMAP(t *testing.T, mails int, answer func(tag, line string) string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	all := make([]string, mails)
	for i := range all {
		all[i] = fmt.Sprint(i + 1)
	}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				r := bufio.NewReader(c)
				w := func(s string) { fmt.Fprint(c, s) }
				w("* OK [CAPABILITY IMAP4rev1] scripted server ready\r\n")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					f := strings.Fields(line)
					if len(f) < 2 {
						continue
					}
					tag, cmd := f[0], strings.ToUpper(f[1])
					if cmd == "UID" && len(f) > 2 {
						cmd += " " + strings.ToUpper(f[2])
					}
					switch cmd {
					case "CAPABILITY":
						w("* CAPABILITY IMAP4rev1\r\n" + tag + " OK done\r\n")
					case "LOGIN":
						w(tag + " OK [CAPABILITY IMAP4rev1] logged in\r\n")
					case "SELECT", "EXAMINE":
						w(fmt.Sprintf("* %d EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT %d] n\r\n* FLAGS (\\Seen)\r\n", mails, mails+1) +
							tag + " OK [READ-WRITE] selected\r\n")
					case "UID SEARCH":
						w("* SEARCH " + strings.Join(all, " ") + "\r\n" + tag + " OK searched\r\n")
					case "SEARCH":
						// SEARCH UID n: message n.
						w("* SEARCH " + f[len(f)-1] + "\r\n" + tag + " OK searched\r\n")
					case "UID FETCH", "FETCH", "UID STORE", "STORE":
						w(answer(tag, line))
					case "LOGOUT":
						w("* BYE\r\n" + tag + " OK bye\r\n")
						return
					default:
						w(tag + " OK\r\n")
					}
				}
			}(conn)
		}
	}()
	return "imap+insecure://support:pw@" + l.Addr().String() + "/INBOX"
}

// fetched is a FETCH response for message n (UID n) with the UID after the
// body, as some servers send it (RFC 9051 7.5.2 sets no order).
func fetched(n int, id string) string {
	m := testMail(id)
	return fmt.Sprintf("* %d FETCH (BODY[] {%d}\r\n%s UID %d)\r\n", n, len(m), m, n)
}

// fetchedUIDFirst is a FETCH response as most servers send it.
func fetchedUIDFirst(n int, id string) string {
	m := testMail(id)
	return fmt.Sprintf("* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n", n, n, len(m), m)
}

// pollUntil runs a poller on url until the checkpoint reaches last.
func pollUntil(t *testing.T, url string, st *store, batch int, last uint32) tickets.IMAPCheckpoint {
	t.Helper()
	pool := st.pool
	p, err := imappoller.New(imappoller.Options{URL: url, Pool: pool, Deliver: st.Deliver, BatchSize: batch,
		PollInterval: 50 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Logger: newLogs(t).logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var cp tickets.IMAPCheckpoint
	waitFor(t, fmt.Sprintf("the checkpoint at UID %d", last), func() bool {
		cp, err = tickets.NewStore(pool).IMAPCheckpoint(context.Background(), p.Mailbox())
		return err == nil && cp.LastUID >= last
	})
	return cp
}

// TestUIDAfterTheBody: go-imap matches a UID FETCH response to its command
// only by a UID that comes before the body; a server that sends it after
// once had its mail taken for expunged and skipped. The message is fetched
// again by its sequence number and delivered.
func TestUIDAfterTheBody(t *testing.T) {
	t.Parallel()
	url := scriptedIMAP(t, 2, func(tag, line string) string {
		if strings.Contains(line, "STORE") {
			return tag + " OK stored\r\n"
		}
		var out string
		for n, id := range []string{"late-uid-1", "late-uid-2"} {
			if strings.Contains(line, "FETCH 1:2") || strings.Contains(line, fmt.Sprintf("FETCH %d ", n+1)) {
				out += fetched(n+1, id)
			}
		}
		return out + tag + " OK fetched\r\n"
	})
	st := newStore(pgtest.New(t))
	pollUntil(t, url, st, 50, 2)
	for _, id := range []string{"late-uid-1", "late-uid-2"} {
		if n := st.callsOf(id); n != 1 {
			t.Errorf("%s delivered %d times, want 1", id, n)
		}
	}
}

// TestUnreadableMessage: a message the server refuses to return (Exchange:
// "could not be converted to an RFC-822 compatible format") is flagged and
// passed over after a few tries, so the mail after it arrives, once.
func TestUnreadableMessage(t *testing.T) {
	t.Parallel()
	const maxTries = 3 // imappoller's maxRefusals
	for _, batch := range []int{1, 50} {
		t.Run(fmt.Sprint("batch of ", batch), func(t *testing.T) {
			t.Parallel()
			flagged := make(chan string, 10)
			url := scriptedIMAP(t, 2, func(tag, line string) string {
				var out string
				if strings.Contains(line, "STORE") {
					flagged <- line
					return tag + " OK stored\r\n"
				}
				if strings.Contains(line, "FETCH 2 ") || strings.Contains(line, "FETCH 1:2 ") {
					out = fetchedUIDFirst(2, "good-2")
				}
				if strings.Contains(line, "FETCH 1 ") || strings.Contains(line, "FETCH 1:2 ") {
					return out + tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n"
				}
				return out + tag + " OK fetched\r\n"
			})
			st := newStore(pgtest.New(t))
			pollUntil(t, url, st, batch, 2)
			// Until the unreadable one is passed over, the mail after it
			// may be delivered on each try (intake stores it once).
			if n := st.callsOf("good-2"); n < 1 || n > maxTries {
				t.Errorf("the mail after the unreadable one delivered %d times, want 1 to %d", n, maxTries)
			}
			var stores []string
			for len(flagged) > 0 {
				stores = append(stores, <-flagged)
			}
			if !strings.Contains(strings.Join(stores, ""), `\Flagged`) {
				t.Errorf("the unreadable message was not flagged: %q", stores)
			}
		})
	}
}

// TestMarkingFailsBacksOff: when marking delivered mail fails every time
// (a read-only mailbox, a full folder), each new session delivers the mail
// again; the sessions must come further and further apart, not every
// MinBackoff. Doubling from 20 ms allows some 8 sessions in 2 s.
func TestMarkingFailsBacksOff(t *testing.T) {
	t.Parallel()
	url := scriptedIMAP(t, 1, func(tag, line string) string {
		if strings.Contains(line, "STORE") {
			return tag + " NO [OVERQUOTA] mailbox is read-only\r\n"
		}
		return fetched(1, "stuck-1") + tag + " OK fetched\r\n"
	})
	st := newStore(pgtest.New(t))
	logs := newLogs(t)
	stop := runPoller(t, imappoller.Options{URL: url, Pool: st.pool, Deliver: st.Deliver,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: time.Hour, Logger: logs.logger()})
	waitFor(t, "the first delivery", func() bool { return st.callsOf("stuck-1") >= 1 })
	time.Sleep(2 * time.Second)
	stop()
	if n := st.callsOf("stuck-1"); n > 12 {
		t.Errorf("delivered %d times in 2 s: the backoff does not grow", n)
	}
}
