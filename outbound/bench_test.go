package outbound_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"ticketd/outbound"
	"ticketd/tickets"
)

// BenchmarkSenderDelivery measures the outbox delivery rate into a local
// SMTP sink: rows claimed from PostgreSQL, sent through the Relay, marked
// sent. The baseline in the same run is a bare go-smtp client sending the
// same bytes in a loop on one connection, with no database at all.
//
//	go test ./outbound -run '^$' -bench SenderDelivery -benchtime 2000x
func BenchmarkSenderDelivery(b *testing.B) {
	f := newFixture(b, func(o *outbound.NotifierOptions) { o.AutoLimitPerHour = -1 })
	f.log = nil
	ann := f.user("ann@customer.example", "Ann", tickets.RoleUser)
	tk := f.ticket(ann, "Printer on fire", "The printer on floor 2 is on fire.", "open-1@customer.example")
	f.tx(func(st *tickets.Store) error { return f.n.Completion(f.ctx, st, "bench", tk.ID) })
	data := f.mails(tk.ID)[0].Data
	if _, err := f.pool.Exec(f.ctx, `UPDATE mail_outbox SET status = 'sent'`); err != nil {
		b.Fatal(err)
	}
	sk := startSink(b, sinkOptions{Count: true})
	rates := map[string]float64{}
	run := 0

	for _, workers := range []int{1, 4} {
		name := fmt.Sprintf("outbox/workers=%d", workers)
		b.Run(name, func(b *testing.B) {
			run++
			if _, err := f.pool.Exec(f.ctx, `DELETE FROM mail_outbox WHERE kind = 'bench'`); err != nil {
				b.Fatal(err)
			}
			_, err := f.pool.Exec(f.ctx, `
				INSERT INTO mail_outbox (kind, message_id, envelope_from, recipients, automatic, data)
				SELECT 'bench', 'bench-' || $1::int || '-' || g || '@desk.example', $2, ARRAY['ann@customer.example'], true, $3
				FROM generate_series(1, $4) g`, run, support, data, b.N)
			if err != nil {
				b.Fatal(err)
			}
			r, err := outbound.NewRelay(outbound.RelayOptions{URL: sk.url("smtp", ""), MaxIdle: workers})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			snd := outbound.NewSender(outbound.SenderOptions{Pool: f.pool, Transport: r, Workers: workers})
			before := sk.count()
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			start := time.Now()
			n, err := snd.DeliverDue(f.ctx)
			elapsed := time.Since(start)
			b.StopTimer()
			if err != nil || n != b.N || sk.count()-before != b.N {
				b.Fatalf("delivered %d (sink got %d) of %d: %v", n, sk.count()-before, b.N, err)
			}
			rates[name] = float64(b.N) / elapsed.Seconds()
			b.ReportMetric(rates[name], "mails/s")
		})
	}

	b.Run("baseline/bare-client", func(b *testing.B) {
		c, err := smtp.Dial(sk.addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("bench.test"); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			if err := c.SendMail(support, []string{"ann@customer.example"}, bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		rates["bare"] = float64(b.N) / elapsed.Seconds()
		b.ReportMetric(rates["bare"], "mails/s")
	})

	if bare := rates["bare"]; bare > 0 {
		for _, w := range []int{1, 4} {
			name := fmt.Sprintf("outbox/workers=%d", w)
			b.Logf("%-20s %8.0f mails/s = %.2f × the bare client (%.0f mails/s, %d-byte mails)",
				name, rates[name], rates[name]/bare, bare, len(data))
		}
	}
}
