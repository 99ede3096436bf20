// Command pipeline measures ticketd end to end, as a customer and a
// support team see it: from the MX accepting a new mail (Postfix's 250) to
// the ticket In-Progress with both notifications, the requester's
// acknowledgement and the assignee's mail, delivered at the relay. New
// mail is offered at steady rates (open loop: one mail every 1/rate
// seconds, however long the answers take) for a while each, and every
// shape is measured in the same run:
//
//   - baseline: one replica on the Inngest dev server (the `ticketd dev`
//     shape), behind the same Postfix;
//   - cluster: three replicas on inngest start with its state in
//     PostgreSQL and Redis (the `ticketd cluster` shape).
//
// It prints, per shape and rate, tickets per second done and the p50 and
// p99 of that latency, then where the time went: the median of each stage
// by the database's timestamps.
//
//	go run ./bench/pipeline -rates 10,50,100 -duration 60s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/cluster"
	"ticketd/tickets"
)

func main() {
	var (
		rates    = flag.String("rates", "10,50,100", "offered loads, new tickets per second, comma-separated")
		duration = flag.Duration("duration", time.Minute, "how long each load is offered")
		ticketd  = flag.String("ticketd", "bin/ticketd", "the ticketd binary")
		inngest  = flag.String("inngest", "bin/inngest", "the Inngest CLI")
		replicas = flag.Int("replicas", 3, "replicas of the cluster shape")
		tick     = flag.Int("tick", 0, "Inngest's queue tick in milliseconds (0: its default)")
		only     = flag.String("only", "", "run only this shape: baseline or cluster")
		drain    = flag.Duration("drain", 2*time.Minute, "how long to wait after a load for its last tickets")
		keep     = flag.Bool("keep", false, "keep the clusters' directories (their logs) after the run")
	)
	flag.Parse()
	var loads []int
	for _, s := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fatalf("-rates: %q is not a positive number", s)
		}
		loads = append(loads, n)
	}
	if err := cluster.Available(); err != nil {
		fatalf("%v", err)
	}
	shapes := []shape{
		{name: "dev server, 1 replica (baseline)", key: "baseline", replicas: 1, dev: true},
		{name: fmt.Sprintf("inngest start, %d replicas", *replicas), key: "cluster", replicas: *replicas},
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("pipeline benchmark, %s, %d cores, load average %s", time.Now().UTC().Format("2006-01-02 15:04"), numCPU(), load)
	fmt.Printf("from Postfix's 250 for a new mail to the ticket In-Progress with both notifications at the relay; %v per load\n\n", *duration)
	var results []result
	for _, sh := range shapes {
		if *only != "" && *only != sh.key {
			continue
		}
		rs, err := run(sh, loads, *duration, *drain, *ticketd, *inngest, *tick, *keep)
		if err != nil {
			fatalf("%s: %v", sh.name, err)
		}
		results = append(results, rs...)
	}
	report(os.Stdout, results)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pipeline: "+format+"\n", args...)
	os.Exit(1)
}

func numCPU() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

type shape struct {
	name, key string
	replicas  int
	dev       bool
}

// result is one shape at one offered load.
type result struct {
	shape    shape
	offered  int
	sent     int           // mails Postfix accepted
	done     int           // tickets In-Progress with both mails at the sink
	rate     float64       // done per second, first accept to last done
	p50, p99 time.Duration // accept to done
	stages   []stage
}

// stage is the median time of one step of the pipeline.
type stage struct {
	name string
	p50  time.Duration
}

func run(sh shape, loads []int, d, drain time.Duration, ticketd, inngest string, tick int, keep bool) ([]result, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ticketd-pipeline-")
	if err != nil {
		return nil, err
	}
	if !keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "pipeline: %s in %s\n", sh.name, dir)
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	c, err := cluster.Start(ctx, cluster.Options{Dir: dir, Ticketd: abs(ticketd), Inngest: abs(inngest),
		Replicas: sh.replicas, Domain: "example.com", DevServer: sh.dev, InngestTick: tick,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Env:    []string{"LOG_LEVEL=warn", "LLM_PROVIDER=rules"}})
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	pool, err := pgxpool.New(ctx, c.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	// A moderator gets at most 120 automatic mails an hour (the rest are
	// held back), so the team is large enough for every load's assignment
	// mails to go out.
	st := tickets.NewStore(pool)
	total := 0
	for _, rate := range loads {
		total += int(float64(rate) * d.Seconds())
	}
	for i := range total/100 + 2 {
		u := tickets.NewUser{Email: fmt.Sprintf("mod%d@example.com", i), Name: fmt.Sprintf("Moderator %d", i),
			Role: tickets.RoleModerator, Skills: []string{"printers", "networking"}}
		if _, err := st.CreateUser(ctx, u); err != nil {
			return nil, err
		}
	}
	// Warm up: the first runs of each function are slower.
	if _, err := offer(ctx, c, pool, "warm", 5, 4*time.Second, drain); err != nil {
		return nil, err
	}
	var out []result
	for _, rate := range loads {
		fmt.Fprintf(os.Stderr, "pipeline: %s, %d tickets/s for %v\n", sh.name, rate, d)
		r, err := offer(ctx, c, pool, fmt.Sprintf("r%d", rate), rate, d, drain)
		if err != nil {
			return nil, err
		}
		r.shape, r.offered = sh, rate
		out = append(out, r)
	}
	return out, nil
}

// accepted is one mail Postfix took.
type accepted struct {
	id string
	at time.Time
}

// offer sends rate new mails per second for d through Postfix, waits until
// each ticket is done (or drain passed), and measures.
func offer(ctx context.Context, c *cluster.Cluster, pool *pgxpool.Pool, tag string, rate int, d, drain time.Duration) (result, error) {
	n := int(math.Round(float64(rate) * d.Seconds()))
	jobs := make(chan int, n)
	var mu sync.Mutex
	var acc []accepted
	var failed int
	var wg sync.WaitGroup
	// Enough connections that a slow answer does not hold the schedule up.
	for range min(64, max(4, rate)) {
		wg.Go(func() {
			var cl *smtp.Client
			defer func() {
				if cl != nil {
					cl.Quit()
				}
			}()
			for i := range jobs {
				id := fmt.Sprintf("%s-%d@bench.test", tag, i)
				from := fmt.Sprintf("%s-%d@customer.test", tag, i)
				raw := fmt.Sprintf("From: <%s>\r\nTo: <support@example.com>\r\nSubject: Printer %d on floor %d is jammed\r\nMessage-ID: <%s>\r\nDate: Thu, 26 Nov 2026 11:00:00 +0000\r\n\r\nThe printer is jammed again; we cannot print invoices.\r\n",
					from, i, i%9, id)
				var err error
				for try := 0; try < 3; try++ {
					if cl == nil {
						if cl, err = smtp.Dial(c.Postfix.Addr); err != nil {
							cl = nil
							continue
						}
					}
					if err = send(cl, from, raw); err == nil {
						break
					}
					cl.Close()
					cl = nil
				}
				mu.Lock()
				if err != nil {
					failed++
				} else {
					acc = append(acc, accepted{id: "<" + id + ">", at: time.Now()})
				}
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "pipeline: %d of %d mails not accepted by Postfix\n", failed, n)
	}
	// Wait until every ticket is done, or drain passed since the last mail.
	deadline := time.Now().Add(drain)
	var done map[string]time.Time
	for {
		var err error
		if done, err = finished(ctx, c, pool, tag); err != nil {
			return result{}, err
		}
		if len(done) >= len(acc) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	r := result{sent: len(acc)}
	var lat []time.Duration
	first, last := time.Time{}, time.Time{}
	for _, a := range acc {
		if first.IsZero() || a.at.Before(first) {
			first = a.at
		}
		t, ok := done[strings.Trim(a.id, "<>")]
		if !ok {
			continue
		}
		r.done++
		lat = append(lat, t.Sub(a.at))
		if t.After(last) {
			last = t
		}
	}
	slices.Sort(lat)
	r.p50, r.p99 = quantile(lat, 0.5), quantile(lat, 0.99)
	if r.done > 0 && last.After(first) {
		r.rate = float64(r.done) / last.Sub(first).Seconds()
	}
	stages, err := stagesOf(ctx, pool, c, tag, acc)
	if err != nil {
		return result{}, err
	}
	r.stages = stages
	return r, nil
}

func send(c *smtp.Client, from, raw string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt("support@example.com", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, raw); err != nil {
		return err
	}
	return w.Close()
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// finished maps the Message-ID (without <>) of each opening mail of tag to
// when the later of its ticket's acknowledgement and assignment mail
// reached the sink; tickets with either still missing are left out.
func finished(ctx context.Context, c *cluster.Cluster, pool *pgxpool.Pool, tag string) (map[string]time.Time, error) {
	atSink := sinkTimes(c)
	rows, err := pool.Query(ctx, `
		SELECT m.message_id, o.kind, o.message_id
		FROM messages m JOIN mail_outbox o ON o.ticket_id = m.ticket_id
		WHERE m.direction = 'inbound' AND m.kind = 'opening' AND m.message_id LIKE $1
			AND o.kind IN ('acknowledgement', 'assignment')`, tag+"-%")
	if err != nil {
		return nil, fmt.Errorf("read the tickets' mails: %w", err)
	}
	defer rows.Close()
	type pair struct {
		n    int
		last time.Time
	}
	seen := map[string]*pair{}
	for rows.Next() {
		var opening, kind, out string
		if err := rows.Scan(&opening, &kind, &out); err != nil {
			return nil, err
		}
		at, ok := atSink[out]
		if !ok {
			continue
		}
		p := seen[opening]
		if p == nil {
			p = &pair{}
			seen[opening] = p
		}
		p.n++
		if at.After(p.last) {
			p.last = at
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	done := map[string]time.Time{}
	for id, p := range seen {
		if p.n == 2 {
			done[id] = p.last
		}
	}
	return done, nil
}

// sinkTimes maps the Message-ID (without <>, as the outbox keeps it) of
// every mail at the sink to when it arrived.
func sinkTimes(c *cluster.Cluster) map[string]time.Time {
	at := map[string]time.Time{}
	for _, m := range c.Sink.Mails() {
		at[strings.Trim(m.MessageID, "<>")] = m.ReceivedAt
	}
	return at
}

// stagesOf is the median of each step, by the database's clock (the same
// machine's): the MX to the replica's commit, the event relay, Inngest to
// the analysis, the analysis to the ticket's update, and the update to
// the later mail at the sink.
func stagesOf(ctx context.Context, pool *pgxpool.Pool, c *cluster.Cluster, tag string, acc []accepted) ([]stage, error) {
	atSink := sinkTimes(c)
	acceptedAt := map[string]time.Time{}
	for _, a := range acc {
		acceptedAt[a.id] = a.at
	}
	rows, err := pool.Query(ctx, `
		SELECT '<' || m.message_id || '>', m.created_at, e.sent_at, d.created_at, t.triaged_at,
			array(SELECT o.message_id FROM mail_outbox o WHERE o.ticket_id = t.id AND o.kind IN ('acknowledgement', 'assignment'))
		FROM messages m JOIN tickets t ON t.id = m.ticket_id
		JOIN event_outbox e ON e.ticket_id = t.id AND e.name = 'ticket.created'
		JOIN LATERAL (SELECT min(created_at) AS created_at FROM ai_decisions WHERE ticket_id = t.id) d ON true
		WHERE m.direction = 'inbound' AND m.kind = 'opening' AND m.message_id LIKE $1
			AND e.sent_at IS NOT NULL AND t.triaged_at IS NOT NULL`, tag+"-%")
	if err != nil {
		return nil, fmt.Errorf("read the stages: %w", err)
	}
	defer rows.Close()
	names := []string{"MX to the replica's commit", "event relay to Inngest", "Inngest to the analysis", "analysis to In-Progress", "In-Progress to both mails at the relay"}
	spans := make([][]time.Duration, len(names))
	for rows.Next() {
		var id string
		var stored, relayed, analysed, triaged time.Time
		var outs []string
		if err := rows.Scan(&id, &stored, &relayed, &analysed, &triaged, &outs); err != nil {
			return nil, err
		}
		acc, ok := acceptedAt[id]
		if !ok {
			continue
		}
		var last time.Time
		for _, o := range outs {
			if t, ok := atSink[o]; ok && t.After(last) {
				last = t
			}
		}
		if len(outs) != 2 || last.IsZero() {
			continue
		}
		for i, d := range []time.Duration{stored.Sub(acc), relayed.Sub(stored), analysed.Sub(relayed), triaged.Sub(analysed), last.Sub(triaged)} {
			spans[i] = append(spans[i], d)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []stage
	for i, s := range spans {
		slices.Sort(s)
		out = append(out, stage{name: names[i], p50: quantile(s, 0.5)})
	}
	return out, nil
}

func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

func report(w io.Writer, rs []result) {
	fmt.Fprintf(w, "%-36s | %8s | %9s | %8s | %8s | %s\n", "shape", "offered", "tickets/s", "p50", "p99", "done")
	fmt.Fprintf(w, "%s\n", strings.Repeat("-", 37)+"+----------+-----------+----------+----------+----------")
	base := map[int]float64{}
	for _, r := range rs {
		if r.shape.key == "baseline" {
			base[r.offered] = r.rate
		}
		fmt.Fprintf(w, "%-36s | %6d/s | %9.1f | %8s | %8s | %d/%d\n", r.shape.name, r.offered, r.rate, ms(r.p50), ms(r.p99), r.done, r.sent)
	}
	fmt.Fprintln(w)
	for _, r := range rs {
		if r.shape.key != "cluster" {
			continue
		}
		ratio := "-"
		if b := base[r.offered]; b > 0 {
			ratio = fmt.Sprintf("%.2f", r.rate/b)
		}
		met := "NOT met"
		if r.offered >= 50 && r.rate >= 0.95*float64(r.offered) && r.p50 < time.Second && r.p99 < 3*time.Second && r.done == r.sent {
			met = "met"
		}
		goal := ""
		if r.offered == 50 {
			goal = fmt.Sprintf("; goal 50 tickets/s, p50 < 1s, p99 < 3s: %s", met)
		}
		fmt.Fprintf(w, "cluster at %d/s: %.1f tickets/s, %s x the baseline's rate%s\n", r.offered, r.rate, ratio, goal)
	}
	fmt.Fprintln(w, "\nwhere the time goes (median per stage):")
	for _, r := range rs {
		var parts []string
		for _, s := range r.stages {
			parts = append(parts, fmt.Sprintf("%s %s", s.name, ms(s.p50)))
		}
		fmt.Fprintf(w, "%-36s %4d/s: %s\n", r.shape.name, r.offered, strings.Join(parts, "; "))
	}
}
