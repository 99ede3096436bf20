package metrics

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ticketd/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Components run without metrics (tests, commands) with a nil *Metrics:
// every recording method must be a no-op on it, including ones added later.
func TestEveryMethodIsSafeOnNilMetrics(t *testing.T) {
	var m *Metrics
	v := reflect.ValueOf(m)
	if v.NumMethod() == 0 {
		t.Fatal("no methods found on *Metrics")
	}
	for i := 0; i < v.NumMethod(); i++ {
		name := v.Type().Method(i).Name
		method := v.Method(i)
		args := make([]reflect.Value, method.Type().NumIn())
		for j := range args {
			args[j] = reflect.Zero(method.Type().In(j))
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("(*Metrics)(nil).%s panics: %v", name, r)
				}
			}()
			method.Call(args)
		}()
	}
}

func TestDatabaseGauges(t *testing.T) {
	pool := pgtest.New(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `
		INSERT INTO users (id, email) VALUES (1, 'a@example.com');
		INSERT INTO tickets (subject, requester_id) VALUES ('a', 1), ('b', 1);
		INSERT INTO tickets (subject, requester_id, status, completed_at) VALUES ('c', 1, 'completed', now());
		INSERT INTO event_outbox (name, created_at) VALUES ('ticket.created', now() - interval '90 seconds');
		INSERT INTO mail_outbox (kind, message_id, recipients, data, status) VALUES ('ack', 'x@y', '{a@example.com}', 'x', 'failed')`)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := New(reg, pool, nil)
	m.MailAccepted("smtp", "ticket", 3*time.Millisecond)
	m.MailRefused("smtp", "unknown-recipient")

	want := `
# HELP ticketd_tickets Tickets by status.
# TYPE ticketd_tickets gauge
ticketd_tickets{status="completed"} 1
ticketd_tickets{status="in_progress"} 0
ticketd_tickets{status="todo"} 2
# HELP ticketd_outbox_pending Rows waiting in an outbox (events, mails).
# TYPE ticketd_outbox_pending gauge
ticketd_outbox_pending{outbox="events"} 1
ticketd_outbox_pending{outbox="mails"} 0
# HELP ticketd_mail_outbox_failed Mails that failed permanently.
# TYPE ticketd_mail_outbox_failed gauge
ticketd_mail_outbox_failed 1
# HELP ticketd_mails_refused_total Mails or recipients refused, by source and reason.
# TYPE ticketd_mails_refused_total counter
ticketd_mails_refused_total{reason="unknown-recipient",source="smtp"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ticketd_tickets", "ticketd_outbox_pending",
		"ticketd_mail_outbox_failed", "ticketd_mails_refused_total"); err != nil {
		t.Fatal(err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "ticketd_outbox_oldest_seconds" {
			for _, mm := range mf.GetMetric() {
				if mm.GetLabel()[0].GetValue() == "events" && mm.GetGauge().GetValue() < 89 {
					t.Errorf("oldest event age %v, want about 90s", mm.GetGauge().GetValue())
				}
			}
		}
	}
}
