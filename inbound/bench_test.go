package inbound_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/inbound"
	"ticketd/mailauth"
	"ticketd/mailauth/dnstest"
	"ticketd/pgtest"
	"ticketd/signing"
)

// benchMail is a new-ticket mail of about size bytes; i makes it unique.
func benchMail(i, size int) []byte {
	line := "The printer on floor 3 prints every page twice and then jams; we restarted it twice.\r\n"
	body := strings.Repeat(line, max(1, (size-400)/len(line)))
	return []byte(fmt.Sprintf("From: Requester %d <user%d@example.com>\r\nTo: support@ticketd.test\r\n"+
		"Subject: Printer trouble %d\r\nDate: Mon, 02 Mar 2026 10:00:00 +0100\r\nMessage-ID: <bench-%d@example.com>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\n\r\n%s\r\nThanks,\r\nRequester\r\n",
		i%500, i%500, i, i, body))
}

// benchPool is a fresh database with room for 8 concurrent deliveries.
func benchPool(b *testing.B) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(pgtest.URL(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

// BenchmarkDeliver measures intake of new-ticket mails (parse, thread,
// ticket, message, audit, event: one transaction each) against a baseline
// in the same run that stores each mail's raw bytes with one INSERT.
// Compare the two with benchstat or by eye; ns/op is per mail. The
// parallel8 rows deliver from 8 goroutines at once (throughput, not
// latency).
func BenchmarkDeliver(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10} {
		name := fmt.Sprintf("%dKB", size>>10)
		b.Run("baseline-insert/"+name, func(b *testing.B) {
			pool := pgtest.New(b)
			ctx := context.Background()
			b.SetBytes(int64(len(benchMail(0, size))))
			i := 0
			for b.Loop() {
				raw := benchMail(i, size)
				i++
				sum := sha256.Sum256(raw)
				if _, err := pool.Exec(ctx, `INSERT INTO raw_messages (sha256, data, source) VALUES ($1, $2, 'smtp')`, sum[:], raw); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("baseline-insert-parallel8/"+name, func(b *testing.B) {
			pool := benchPool(b)
			ctx := context.Background()
			b.SetBytes(int64(len(benchMail(0, size))))
			b.SetParallelism(max(1, 8/runtimeProcs()))
			var seq atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					raw := benchMail(int(seq.Add(1)), size)
					sum := sha256.Sum256(raw)
					if _, err := pool.Exec(ctx, `INSERT INTO raw_messages (sha256, data, source) VALUES ($1, $2, 'smtp')`, sum[:], raw); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run("deliver-parallel8/"+name, func(b *testing.B) {
			pool := benchPool(b)
			keys, err := signing.NewKeys("a benchmark secret of enough length")
			if err != nil {
				b.Fatal(err)
			}
			in := inbound.New(inbound.Options{Pool: pool, SupportAddress: support, Keys: keys, Notifier: &recordingNotifier{}})
			ctx := context.Background()
			src := inbound.Source{Kind: "smtp", MailFrom: "user@example.com", RcptTo: []string{support}}
			b.SetBytes(int64(len(benchMail(0, size))))
			b.SetParallelism(max(1, 8/runtimeProcs()))
			var seq atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := in.Deliver(ctx, benchMail(int(seq.Add(1)), size), src); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run("deliver/"+name, func(b *testing.B) {
			pool := pgtest.New(b)
			keys, err := signing.NewKeys("a benchmark secret of enough length")
			if err != nil {
				b.Fatal(err)
			}
			in := inbound.New(inbound.Options{Pool: pool, SupportAddress: support, Keys: keys, Notifier: &recordingNotifier{}})
			ctx := context.Background()
			src := inbound.Source{Kind: "smtp", MailFrom: "user@example.com", RcptTo: []string{support}}
			b.SetBytes(int64(len(benchMail(0, size))))
			i := 0
			for b.Loop() {
				raw := benchMail(i, size)
				i++
				res, err := in.Deliver(ctx, raw, src)
				if err != nil {
					b.Fatal(err)
				}
				if res.TicketID == 0 || res.Duplicate {
					b.Fatalf("result %+v", res)
				}
			}
		})
	}
}

// BenchmarkDeliverReply measures intake of the requester's replies to a
// ticket: threaded by In-Reply-To, or by the oldest of ten References (a
// long thread that ticketd joined late).
func BenchmarkDeliverReply(b *testing.B) {
	for _, refs := range []int{0, 10} {
		b.Run(fmt.Sprintf("references-%d", refs), func(b *testing.B) {
			pool := pgtest.New(b)
			keys, err := signing.NewKeys("a benchmark secret of enough length")
			if err != nil {
				b.Fatal(err)
			}
			in := inbound.New(inbound.Options{Pool: pool, SupportAddress: support, Keys: keys, Notifier: &recordingNotifier{}})
			ctx := context.Background()
			src := inbound.Source{Kind: "smtp", MailFrom: "user0@example.com", RcptTo: []string{support}}
			open, err := in.Deliver(ctx, benchMail(0, 1<<10), src)
			if err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				i++
				thread := "In-Reply-To: <bench-0@example.com>\r\n"
				if refs > 0 {
					thread = "References: <bench-0@example.com>"
					for j := range refs - 1 {
						thread += fmt.Sprintf(" <elsewhere-%d-%d@example.net>", i, j)
					}
					thread += "\r\n"
				}
				raw := []byte(fmt.Sprintf("From: Requester 0 <user0@example.com>\r\nTo: support@ticketd.test\r\n"+
					"Subject: Re: Printer trouble\r\nMessage-ID: <reply-%d@example.com>\r\n%s"+
					"Content-Type: text/plain\r\n\r\nIt jams again.\r\n", i, thread))
				res, err := in.Deliver(ctx, raw, src)
				if err != nil {
					b.Fatal(err)
				}
				if res.TicketID != open.TicketID {
					b.Fatalf("result %+v", res)
				}
			}
		})
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkSenderChecks measures intake of 1 KB new-ticket mails by SMTP
// from 8 goroutines, without and with the SPF, DKIM and DMARC checks (a
// DNS server on loopback answering for the senders' domain, answers kept
// for their TTL), in the same run: the ratio of the two ns/op is what the
// checks cost.
func BenchmarkSenderChecks(b *testing.B) {
	d := dnstest.Start(b)
	d.SPF("example.com", "v=spf1 ip4:127.0.0.1 -all")
	d.DMARC("example.com", "v=DMARC1; p=none")
	r, err := mailauth.NewResolver(mailauth.ResolverOptions{Server: d.Addr})
	if err != nil {
		b.Fatal(err)
	}
	checker := mailauth.NewChecker(r, "mx.ticketd.test", 0)
	for _, checked := range []bool{false, true} {
		name := "unchecked"
		if checked {
			name = "checked"
		}
		b.Run(name+"-parallel8/1KB", func(b *testing.B) {
			keys, err := signing.NewKeys("a bench secret of enough length")
			if err != nil {
				b.Fatal(err)
			}
			opt := inbound.Options{Pool: benchPool(b), SupportAddress: support, Keys: keys, Notifier: &recordingNotifier{}}
			if checked {
				opt.Authenticator = checker
			}
			in := inbound.New(opt)
			b.SetParallelism(max(1, 8/runtimeProcs()))
			var seq atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					raw := benchMail(int(seq.Add(1)), 1<<10)
					if _, err := in.Deliver(context.Background(), raw, inbound.Source{Kind: "smtp", RemoteAddr: "127.0.0.1:4000",
						Helo: "mx.example.com", MailFrom: "user@example.com", RcptTo: []string{support}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkDeliverManyCc measures intake of an opening mail copied to
// 20,000 addresses (349 KB, the size of the report that once made 20,000
// users in 5 s) against a mail of the same size copied to one address, in
// the same run: with MAX_PARTICIPANTS, the addresses past the limit cost
// parsing only. ns/op is per mail.
func BenchmarkDeliverManyCc(b *testing.B) {
	many := manyCc(20000)
	for _, tc := range []struct {
		name string
		mail func(i int) []byte
	}{
		{"baseline-one-cc", func(i int) []byte {
			pad := strings.Repeat("x", 76) + "\r\n"
			return mail{From: "Mallory <mallory@evil.example>", Cc: "one@victims.example", Subject: "Hello everyone",
				MessageID: fmt.Sprintf("<one-%d@evil.example>", i),
				Body:      strings.Repeat(pad, len(many)/len(pad))}.bytes()
		}},
		{"cc-20000", func(i int) []byte {
			return []byte(strings.Replace(string(many), "Message-ID: <", fmt.Sprintf("Message-ID: <many-%d.", i), 1))
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			pool := pgtest.New(b)
			keys, err := signing.NewKeys("a benchmark secret of enough length")
			if err != nil {
				b.Fatal(err)
			}
			in := inbound.New(inbound.Options{Pool: pool, SupportAddress: support, Keys: keys, Notifier: &recordingNotifier{}})
			ctx := context.Background()
			src := inbound.Source{Kind: "smtp", MailFrom: "mallory@evil.example", RcptTo: []string{support}}
			b.SetBytes(int64(len(tc.mail(0))))
			i := 0
			for b.Loop() {
				i++
				res, err := in.Deliver(ctx, tc.mail(i), src)
				if err != nil {
					b.Fatal(err)
				}
				if res.TicketID == 0 || res.Duplicate {
					b.Fatalf("result %+v", res)
				}
			}
		})
	}
}
