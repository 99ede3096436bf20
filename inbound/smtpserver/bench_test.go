package smtpserver_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-smtp"

	"ticketd/inbound/smtpserver"
	"ticketd/pgtest"
)

// BenchmarkReceive sends 1 KB mails over persistent connections, one per
// parallel goroutine, into the raw store and into ticketd's intake.
// scripts/bench-intake.sh prints the full comparison with a baseline.
func BenchmarkReceive(b *testing.B) {
	for _, target := range []string{"raw", "intake"} {
		b.Run(target, func(b *testing.B) {
			pool := pgtest.New(b)
			opt := smtpserver.Options{Deliver: (&rawStore{pool: pool}).Deliver, Logger: discard()}
			if target == "intake" {
				var err error
				if opt, err = intakeOptions(pool, discard()); err != nil {
					b.Fatal(err)
				}
			}
			_, addr := start(b, opt)
			var seq atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c, err := smtp.Dial(addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				for pb.Next() {
					msg := mail(fmt.Sprintf("bench-%d", seq.Add(1)), 1024)
					if err := c.SendMail("ann@client.test", []string{"support@example.test"}, bytesReader(msg)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
