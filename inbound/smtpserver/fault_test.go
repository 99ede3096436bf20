package smtpserver_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/inbound/smtpserver"
	"ticketd/pgtest"
)

// The fault test runs the server in a child process (this test binary,
// started again with faultChildEnv set) so that it can be killed with
// SIGKILL, as a crash or an OOM kill would end ticketd.
const (
	faultChildEnv = "SMTPSERVER_FAULT_CHILD"
	faultDBEnv    = "SMTPSERVER_FAULT_DATABASE_URL"
)

// faultChild serves SMTP on 127.0.0.1:0 with delivery into PostgreSQL,
// prints its address on stdout and runs until killed.
func faultChild() int {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pool, err := pgxpool.New(ctx, os.Getenv(faultDBEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault child: connect:", err)
		return 2
	}
	opt, err := faultDeliverer(ctx, pool, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault child:", err)
		return 2
	}
	opt.MaxSessions = 200
	s, err := smtpserver.New(opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault child:", err)
		return 2
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault child: listen:", err)
		return 2
	}
	fmt.Println(l.Addr().String())
	if err := s.Serve(l); err != nil {
		fmt.Fprintln(os.Stderr, "fault child:", err)
		return 1
	}
	return 0
}

type faultServer struct {
	cmd  *exec.Cmd
	addr string
}

func startFaultServer(t *testing.T, dbURL string) *faultServer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), faultChildEnv+"=1", faultDBEnv+"="+dbURL)
	cmd.Stderr = &tlogWriter{t: t}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the server process: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("server process did not print its address: %v", err)
	}
	return &faultServer{cmd: cmd, addr: strings.TrimSpace(line)}
}

// storedCounts counts the stored mails per fault-test id.
func storedCounts(t *testing.T, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT data FROM raw_messages`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	re := regexp.MustCompile(`marker (fault-\d+-\d+)\.`)
	counts := map[string]int{}
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			t.Fatal(err)
		}
		if m := re.FindSubmatch(data); m != nil {
			counts[string(m[1])]++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}

// TestSIGKILLWhileClientsSend kills the server process while many clients
// send. Every mail that got 250 must be stored exactly once; the others
// may or may not be, and sending them again must not store any twice.
func TestSIGKILLWhileClientsSend(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	const clients, killAfter = 16, 150
	srv := startFaultServer(t, dbURL)

	type result struct {
		id   string
		code int // 250, a refusal's code, or 0 for no answer
		err  error
	}
	var (
		mu       sync.Mutex
		results  []result
		accepted atomic.Int64
		killed   atomic.Bool
		killNow  = make(chan struct{})
		killOnce sync.Once
		wg       sync.WaitGroup
	)
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("fault-%d-%d", g, i)
				err := send(srv.addr, "ann@client.test", []string{"support@example.test"}, mail(id, 2000+i%7*1000))
				mu.Lock()
				results = append(results, result{id, code(err), err})
				mu.Unlock()
				if err == nil && accepted.Add(1) >= killAfter {
					killOnce.Do(func() { close(killNow) })
				}
				if killed.Load() {
					return
				}
			}
		}(g)
	}
	<-killNow
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	killed.Store(true)
	_ = srv.cmd.Wait()
	wg.Wait()

	var ok, unanswered []string
	refused := map[int]int{}
	for _, r := range results {
		switch r.code {
		case 250:
			ok = append(ok, r.id)
		case 0:
			unanswered = append(unanswered, r.id)
		default:
			refused[r.code]++
			unanswered = append(unanswered, r.id)
		}
	}
	counts := storedCounts(t, pool)
	storedUnanswered := 0
	for _, id := range unanswered {
		storedUnanswered += counts[id]
	}
	t.Logf("before the kill: %d sent, %d answered 250, %d without a 250 (refusals by code: %v), "+
		"%d of those stored anyway (committed, answer lost), %d rows in all",
		len(results), len(ok), len(unanswered), refused, storedUnanswered, len(counts))
	for _, id := range ok {
		if counts[id] != 1 {
			t.Errorf("%s got 250 and is stored %d times, want 1", id, counts[id])
		}
	}
	for id, n := range counts {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	checkThread := func(ids []string, when string) {
		for _, id := range ids {
			if counts[id] == 0 {
				continue
			}
			if m, tk := messagesWithID(t, pool, id+"@client.test"); m != 1 || tk != 1 {
				t.Errorf("%s %s: %d messages in %d tickets, want 1 in 1", id, when, m, tk)
			}
		}
	}
	checkThread(ok, "before the restart")
	checkThread(unanswered, "before the restart")

	// After the restart, clients send again what got no 250; one resends
	// some that did (a client whose 250 was lost on the way would).
	srv = startFaultServer(t, dbURL)
	resend := append(append([]string(nil), unanswered...), ok[:10]...)
	sort.Strings(resend)
	for _, id := range resend {
		g, i := 0, 0
		fmt.Sscanf(id, "fault-%d-%d", &g, &i)
		if err := send(srv.addr, "ann@client.test", []string{"support@example.test"}, mail(id, 2000+i%7*1000)); err != nil {
			t.Errorf("resend %s after the restart: %v", id, err)
		}
	}
	counts = storedCounts(t, pool)
	for _, id := range append(ok, unanswered...) {
		if counts[id] != 1 {
			t.Errorf("%s stored %d times after the resends, want 1", id, counts[id])
		}
	}
	checkThread(append(ok, unanswered...), "after the resends")
	var nTickets int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM tickets`).Scan(&nTickets); err != nil {
		t.Fatal(err)
	}
	if nTickets != len(ok)+len(unanswered) {
		t.Errorf("%d tickets for %d distinct mails", nTickets, len(ok)+len(unanswered))
	}
	t.Logf("after the restart: %d resent (%d without a 250 before, 10 with); %d distinct mails stored, %d tickets, each once: %v",
		len(resend), len(unanswered), len(counts), nTickets, !t.Failed())
}
