// Command intake measures how fast ticketd takes mail in, and prints one
// report: the SMTP intake rate and the latency from the end of DATA to the
// 250 for 1, 8 and 32 concurrent clients with 1 KB and 100 KB mails, for
// ticketd (smtpserver into inbound.Deliver) and, in the same run and under
// the same load, for a baseline: a bare go-smtp server that stores each
// mail's raw bytes with one INSERT. Then the peak memory of each server,
// the peak memory of ticketd taking 25 MB mails on 4 connections, and the
// IMAP intake rate for 2,000 mails from Dovecot against the SMTP rate for
// the same mails.
//
// Each server runs in a process of its own (this program started again with
// -serve), so that its peak RSS (VmHWM) is its own; the load comes from this
// process. PostgreSQL is a private cluster, durable unless -fast.
//
// Usage: go run ./bench/intake [-duration 5s] [-fast] [-imap-mails 2000]
// [-only smtp -clients 8 -sizes 1] [-pgstat] [-profile DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/migrations"
	"ticketd/pgcluster"
)

var (
	duration   = flag.Duration("duration", 6*time.Second, "how long each load row runs, for each server")
	slices     = flag.Int("slices", 3, "turns each load row is split into, the servers alternating")
	fast       = flag.Bool("fast", false, "run PostgreSQL without fsync (not what production does)")
	imapMails  = flag.Int("imap-mails", 2000, "mails for the IMAP row")
	bigMails   = flag.Int("big-mails", 2, "25 MB mails per connection in the memory row")
	bigConns   = flag.Int("big-conns", 4, "connections in the memory row")
	memLimit   = flag.String("memlimit", "160MiB", "the GOMEMLIMIT of the memory row's last server")
	serve      = flag.String("serve", "", "internal: serve SMTP as ticketd or baseline")
	dbURL      = flag.String("db", "", "internal: the database of -serve")
	logPath    = flag.String("log", "", "internal: the log file of -serve")
	cpuProfile = flag.String("cpuprofile", "", "internal: write the -serve process's CPU profile here")
	profileDir = flag.String("profile", "", "write each server process's CPU profile into this directory")
	only       = flag.String("only", "", "run only this part: smtp, memory or imap")
	poolConns  = flag.Int("pool-max-conns", 0, "the servers' PostgreSQL pool size (pool_max_conns); 0 is pgx's default, max(4, CPUs)")
	clientsArg = flag.String("clients", "1,8,32", "the SMTP rows' numbers of concurrent clients, comma-separated")
	sizesArg   = flag.String("sizes", "1,100", "the SMTP rows' mail sizes in KB, comma-separated")
	pgStat     = flag.Bool("pgstat", false, "load pg_stat_statements and report ticketd's statements and its backends' wait events after the SMTP rows")
)

func main() {
	flag.Parse()
	if *serve != "" {
		os.Exit(serveChild(*serve, *dbURL, *logPath))
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-intake:", err)
		os.Exit(1)
	}
}

// bench is one run's PostgreSQL and scratch directory.
type bench struct {
	dir     string
	cluster *pgcluster.Cluster
	admin   *pgxpool.Pool
	out     io.Writer
}

func run() error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ticketd-bench-intake-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{dir: dir, out: os.Stdout}
	pgLog, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return err
	}
	defer pgLog.Close()
	pgOpt := pgcluster.Options{Dir: filepath.Join(dir, "pg"), Fast: *fast, Log: pgLog}
	b.cluster, err = pgcluster.Start(ctx, pgOpt)
	if err != nil {
		return err
	}
	defer func() { b.cluster.Stop() }()
	b.admin, err = pgxpool.New(ctx, b.cluster.URL("postgres"))
	if err != nil {
		return err
	}
	defer func() { b.admin.Close() }()
	if *pgStat {
		if err := b.enableStatements(ctx, pgOpt); err != nil {
			return err
		}
	}

	durability := "durable (fsync on)"
	if *fast {
		durability = "fsync off"
	}
	fmt.Fprintf(b.out, "ticketd intake benchmark: %s, %d CPUs, GOMAXPROCS %d, PostgreSQL %s, %s per row\n",
		time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), runtime.GOMAXPROCS(0), durability, *duration)
	fmt.Fprintf(b.out, "ticketd = smtpserver -> inbound.Deliver (parse, classify, thread, one transaction); "+
		"baseline = bare go-smtp server, one INSERT of the raw bytes\n\n")

	var failed []string
	parts := []struct {
		name string
		run  func(context.Context) error
	}{{"smtp", b.smtpRows}, {"memory", b.memoryRow}, {"imap", b.imapRow}}
	for _, p := range parts {
		if *only != "" && *only != p.name {
			continue
		}
		if err := p.run(ctx); err != nil {
			failed = append(failed, p.name+": "+err.Error())
			fmt.Fprintf(b.out, "%s part failed: %v\n\n", p.name, err)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	return nil
}

// database creates a migrated database.
func (b *bench) database(ctx context.Context, name string) (string, error) {
	if _, err := b.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	url := b.cluster.URL(name)
	if *poolConns > 0 {
		url += fmt.Sprintf("&pool_max_conns=%d", *poolConns)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	if _, err := migrations.Up(ctx, pool); err != nil {
		return "", fmt.Errorf("migrate %s: %w", name, err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE baseline_mail (
		id bigserial PRIMARY KEY, data bytea NOT NULL, received_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return "", fmt.Errorf("create baseline table: %w", err)
	}
	return url, nil
}

func (b *bench) smtpRows(ctx context.Context) error {
	tkURL, err := b.database(ctx, "bench_ticketd")
	if err != nil {
		return err
	}
	blURL, err := b.database(ctx, "bench_baseline")
	if err != nil {
		return err
	}
	rcURL, err := b.database(ctx, "bench_receiver")
	if err != nil {
		return err
	}
	tk, err := b.startServer("ticketd", tkURL)
	if err != nil {
		return err
	}
	defer tk.stop()
	rc, err := b.startServer("receiver", rcURL)
	if err != nil {
		return err
	}
	defer rc.stop()
	bl, err := b.startServer("baseline", blURL)
	if err != nil {
		return err
	}
	defer bl.stop()

	fmt.Fprintf(b.out, "SMTP intake: each client keeps one connection and sends mail after mail (MAIL, RCPT, DATA); latency is end of DATA -> 250\n")
	fmt.Fprintf(b.out, "receiver = ticketd's smtpserver storing like the baseline (one INSERT), to tell the receiver's cost from the intake's\n")
	fmt.Fprintf(b.out, "%-7s %-5s | %-26s | %-26s | %-26s | %s\n", "", "", "ticketd", "receiver", "baseline", "ticketd / receiver /")
	fmt.Fprintf(b.out, "%-7s %-5s | %9s %8s %8s | %9s %8s %8s | %9s %8s %8s | %s\n",
		"clients", "mail", "mails/s", "p50", "p99", "mails/s", "p50", "p99", "mails/s", "p50", "p99", "baseline rate")
	// Warm up: connections to PostgreSQL, the runtime, the caches.
	for _, srv := range []*server{tk, rc, bl} {
		loadCount(srv.addr, 4, mailBody(1<<10), 50, "warm-"+srv.kind)
	}
	b.resetStatements(ctx)
	var waits waitSampler
	if *pgStat {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go waits.run(sctx, b, "bench_ticketd")
	}
	tkMails := 0
	ratios := map[string]float64{}
	var cpuRows []string
	sizes, err := intList(*sizesArg)
	if err != nil {
		return fmt.Errorf("-sizes: %w", err)
	}
	clientCounts, err := intList(*clientsArg)
	if err != nil {
		return fmt.Errorf("-clients: %w", err)
	}
	for _, kb := range sizes {
		size := kb << 10
		body := mailBody(size)
		for _, clients := range clientCounts {
			label := fmt.Sprintf("%dKB", size>>10)
			// Each row runs in slices, the servers taking turns in a
			// rotating order, so that the machine's other load (and
			// the databases' growth) falls on all of them alike.
			servers := []*server{bl, rc, tk}
			res := make(map[*server]*result)
			cpu := make(map[*server][3]time.Duration) // the server's, PostgreSQL's, the load generator's
			busy := make(map[*server][2]int64)        // the machine's ticks: all, busy
			for _, srv := range servers {
				res[srv] = &result{}
			}
			for slice := 0; slice < *slices; slice++ {
				for i := range servers {
					srv := servers[(i+slice)%len(servers)]
					s0, p0, l0 := cpuOf(srv.cmd.Process.Pid), b.postgresCPU(), selfCPU()
					m0, i0 := machineTicks()
					waits.set(srv == tk)
					r := load(srv.addr, clients, body, *duration/time.Duration(*slices),
						fmt.Sprintf("%s%d-%d-%d", srv.kind, clients, size, slice))
					waits.set(false)
					if srv == tk {
						tkMails += r.n
					}
					c := cpu[srv]
					c[0] += cpuOf(srv.cmd.Process.Pid) - s0
					c[1] += b.postgresCPU() - p0
					c[2] += selfCPU() - l0
					cpu[srv] = c
					m1, i1 := machineTicks()
					busy[srv] = [2]int64{busy[srv][0] + m1 - m0, busy[srv][1] + (m1 - m0) - (i1 - i0)}
					res[srv].merge(r)
				}
			}
			for _, srv := range servers {
				n := time.Duration(max(res[srv].n, 1))
				cpuRows = append(cpuRows, fmt.Sprintf("%-7d %-5s %-8s | %8.3f %8.3f %8.3f | %5.0f%%",
					clients, label, srv.kind, ms1(cpu[srv][0]/n), ms1(cpu[srv][1]/n), ms1(cpu[srv][2]/n),
					100*float64(busy[srv][1])/float64(max(busy[srv][0], 1))))
			}
			tick, recv, base := res[tk].sorted(), res[rc].sorted(), res[bl].sorted()
			ratio := tick.rate() / base.rate()
			if clients == 8 {
				ratios[label] = ratio
			}
			fmt.Fprintf(b.out, "%-7d %-5s | %9.1f %8s %8s | %9.1f %8s %8s | %9.1f %8s %8s | %4.2f / %4.2f%s\n",
				clients, label, tick.rate(), ms(tick.pct(50)), ms(tick.pct(99)),
				recv.rate(), ms(recv.pct(50)), ms(recv.pct(99)),
				base.rate(), ms(base.pct(50)), ms(base.pct(99)), ratio, recv.rate()/base.rate(), errNote(tick, recv, base))
		}
	}
	fmt.Fprintf(b.out, "\nCPU per mail, in ms (the server process; PostgreSQL's backends; this process, the load generator), and how busy the machine's CPUs were:\n%-7s %-5s %-8s | %8s %8s %8s | %6s\n",
		"clients", "mail", "server", "server", "postgres", "load", "busy")
	for _, r := range cpuRows {
		fmt.Fprintln(b.out, r)
	}
	fmt.Fprintf(b.out, "peak RSS over these rows: ticketd %s, receiver %s, baseline %s\n",
		mb(tk.peakRSS()), mb(rc.peakRSS()), mb(bl.peakRSS()))
	for _, kb := range sizes {
		label := fmt.Sprintf("%dKB", kb)
		if _, ok := ratios[label]; !ok {
			continue
		}
		verdict := "met"
		if ratios[label] < 0.5 {
			verdict = "NOT met"
		}
		fmt.Fprintf(b.out, "goal ticketd >= 0.5 x baseline at 8 clients, %s mail: %.3f, %s\n", label, ratios[label], verdict)
	}
	if *pgStat {
		if err := b.reportStatements(ctx, "bench_ticketd", tkMails); err != nil {
			return err
		}
		waits.report(b)
	}
	fmt.Fprintln(b.out)
	return nil
}

func (b *bench) memoryRow(ctx context.Context) error {
	url, err := b.database(ctx, "bench_memory")
	if err != nil {
		return err
	}
	const size = 25_000_000
	for _, mail := range []struct {
		what string
		body []byte
	}{
		{"a PDF-like base64 attachment", mailBody(size)},
		{"plain text, such as a pasted log", textBody(size)},
	} {
		fmt.Fprintf(b.out, "Memory: %d connections each sending %d mails of %.0f MB (%s), into a fresh process\n",
			*bigConns, *bigMails, float64(size)/1e6, mail.what)
		if err := b.memoryRows(url, mail.body); err != nil {
			return err
		}
		fmt.Fprintln(b.out)
	}
	return nil
}

// memoryRows sends body from *bigConns connections into a fresh process of
// each server and reports the process's peak RSS.
func (b *bench) memoryRows(url string, body []byte) error {
	variants := []struct {
		label, kind string
		env         []string
	}{
		{"baseline", "baseline", nil},
		{"receiver", "receiver", nil},
		{"ticketd", "ticketd", nil},
		// The Go runtime's own memory limit, which an operator sets
		// with the GOMEMLIMIT environment variable.
		{"ticketd, GOMEMLIMIT=" + *memLimit, "ticketd", []string{"GOMEMLIMIT=" + *memLimit}},
	}
	for _, v := range variants {
		srv, err := b.startServer(v.kind, url, v.env...)
		if err != nil {
			return err
		}
		res := loadCount(srv.addr, *bigConns, body, *bigMails, fmt.Sprintf("mem-%d", time.Now().UnixNano()))
		rss := srv.peakRSS()
		srv.stop()
		line := fmt.Sprintf("%-28s peak RSS %s, %d mails in %.1fs, p50 %s", v.label, mb(rss), res.n, res.elapsed.Seconds(), ms(res.pct(50)))
		if res.errs > 0 {
			line += fmt.Sprintf(", %d FAILED (%s)", res.errs, res.firstErr)
		}
		if v.kind == "ticketd" {
			verdict := "met"
			if rss >= 200<<20 || res.errs > 0 {
				verdict = "NOT met"
			}
			line += fmt.Sprintf("; goal below 200 MB: %s", verdict)
		}
		fmt.Fprintln(b.out, line)
	}
	return nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func ms1(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
}

func mb(n int64) string {
	return fmt.Sprintf("%.0f MB", float64(n)/(1<<20))
}

func errNote(rs ...result) string {
	var notes []string
	for _, r := range rs {
		if r.errs > 0 {
			notes = append(notes, fmt.Sprintf("%d errors: %s", r.errs, r.firstErr))
		}
	}
	if len(notes) == 0 {
		return ""
	}
	return "  (" + strings.Join(notes, "; ") + ")"
}

func discardLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
