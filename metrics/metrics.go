// Package metrics defines ticketd's Prometheus metrics. Components receive a
// *Metrics in their Options and record through its methods, which do nothing
// on a nil *Metrics, so tests need not care. Gauges that describe the
// database (tickets by status, outbox depths and ages) are read from
// PostgreSQL at scrape time, so every replica reports the same truth.
package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds every metric ticketd records.
type Metrics struct {
	mailsAccepted    *prometheus.CounterVec
	mailsRefused     *prometheus.CounterVec
	intakeSeconds    *prometheus.HistogramVec
	autoMails        *prometheus.CounterVec
	mailsSent        prometheus.Counter
	deliveryFailures *prometheus.CounterVec
	imapLag          *prometheus.GaugeVec
	triageOutcomes   *prometheus.CounterVec
	llmSeconds       *prometheus.HistogramVec
	llmErrors        *prometheus.CounterVec
	eventsSent       prometheus.Counter
}

// New registers ticketd's metrics on reg. With a pool, it also registers the
// collector of database gauges.
func New(reg prometheus.Registerer, pool *pgxpool.Pool, log *slog.Logger) *Metrics {
	m := &Metrics{
		mailsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ticketd_mails_accepted_total", Help: "Mails stored by intake, by source (smtp, imap, web, api) and outcome (ticket, reply, duplicate, quarantine)."},
			[]string{"source", "outcome"}),
		mailsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ticketd_mails_refused_total", Help: "Mails or recipients refused, by source and reason."},
			[]string{"source", "reason"}),
		intakeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ticketd_intake_seconds", Help: "Time from a whole mail received to its transaction committed.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"source"}),
		autoMails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ticketd_automatic_mails_total", Help: "Automatic mails received, by kind (auto-reply, bounce, delivery-status, complaint, mdn, auto-generated, bulk)."},
			[]string{"kind"}),
		mailsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ticketd_mails_sent_total", Help: "Mails delivered to the relay or the Maildir."}),
		deliveryFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ticketd_delivery_failures_total", Help: "Failed delivery attempts, temporary (retried) or permanent."},
			[]string{"kind"}),
		imapLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ticketd_imap_lag_messages", Help: "Messages in a polled mailbox not yet taken in."},
			[]string{"mailbox"}),
		triageOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ticketd_triage_total", Help: "Triage decisions, by provider and outcome (ok, repaired, fallback, error)."},
			[]string{"provider", "outcome"}),
		llmSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ticketd_llm_seconds", Help: "LLM call latency by provider.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}, []string{"provider"}),
		llmErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ticketd_llm_errors_total", Help: "LLM calls that failed, by provider."},
			[]string{"provider"}),
		eventsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ticketd_events_sent_total", Help: "Events relayed from the outbox to the workflow engine."}),
	}
	reg.MustRegister(m.mailsAccepted, m.mailsRefused, m.intakeSeconds, m.autoMails, m.mailsSent,
		m.deliveryFailures, m.imapLag, m.triageOutcomes, m.llmSeconds, m.llmErrors, m.eventsSent)
	if pool != nil {
		reg.MustRegister(&dbCollector{pool: pool, log: log})
	}
	return m
}

// MailAccepted records a stored mail and how long intake took.
func (m *Metrics) MailAccepted(source, outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.mailsAccepted.WithLabelValues(source, outcome).Inc()
	m.intakeSeconds.WithLabelValues(source).Observe(took.Seconds())
}

// MailRefused records a refused mail or recipient.
func (m *Metrics) MailRefused(source, reason string) {
	if m == nil {
		return
	}
	m.mailsRefused.WithLabelValues(source, reason).Inc()
}

// AutomaticMail records an automatic mail by kind.
func (m *Metrics) AutomaticMail(kind string) {
	if m == nil {
		return
	}
	m.autoMails.WithLabelValues(kind).Inc()
}

// MailSent records a delivered mail.
func (m *Metrics) MailSent() {
	if m == nil {
		return
	}
	m.mailsSent.Inc()
}

// DeliveryFailed records a failed delivery attempt.
func (m *Metrics) DeliveryFailed(permanent bool) {
	if m == nil {
		return
	}
	kind := "temporary"
	if permanent {
		kind = "permanent"
	}
	m.deliveryFailures.WithLabelValues(kind).Inc()
}

// IMAPLag records how many messages of a mailbox wait to be taken in.
func (m *Metrics) IMAPLag(mailbox string, waiting int) {
	if m == nil {
		return
	}
	m.imapLag.WithLabelValues(mailbox).Set(float64(waiting))
}

// Triage records a triage decision.
func (m *Metrics) Triage(provider, outcome string) {
	if m == nil {
		return
	}
	m.triageOutcomes.WithLabelValues(provider, outcome).Inc()
}

// LLMCall records one LLM call.
func (m *Metrics) LLMCall(provider string, took time.Duration, err error) {
	if m == nil {
		return
	}
	m.llmSeconds.WithLabelValues(provider).Observe(took.Seconds())
	if err != nil {
		m.llmErrors.WithLabelValues(provider).Inc()
	}
}

// EventsSent records events relayed to the workflow engine.
func (m *Metrics) EventsSent(n int) {
	if m == nil {
		return
	}
	m.eventsSent.Add(float64(n))
}

var (
	ticketsDesc = prometheus.NewDesc("ticketd_tickets", "Tickets by status.", []string{"status"}, nil)
	depthDesc   = prometheus.NewDesc("ticketd_outbox_pending", "Rows waiting in an outbox (events, mails).", []string{"outbox"}, nil)
	ageDesc     = prometheus.NewDesc("ticketd_outbox_oldest_seconds", "Age of the oldest row waiting in an outbox.", []string{"outbox"}, nil)
	failedDesc  = prometheus.NewDesc("ticketd_mail_outbox_failed", "Mails that failed permanently.", nil, nil)
	quarDesc    = prometheus.NewDesc("ticketd_quarantine_open", "Automatic mails held in quarantine.", nil, nil)
	upDesc      = prometheus.NewDesc("ticketd_database_up", "Whether the scrape could read the database.", nil, nil)
)

type dbCollector struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{ticketsDesc, depthDesc, ageDesc, failedDesc, quarDesc, upDesc} {
		ch <- d
	}
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.collect(ctx, ch); err != nil {
		if c.log != nil {
			c.log.Warn("metrics: read database", "err", err)
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1)
}

func (c *dbCollector) collect(ctx context.Context, ch chan<- prometheus.Metric) error {
	counts := map[string]float64{"todo": 0, "in_progress": 0, "completed": 0}
	rows, err := c.pool.Query(ctx, `SELECT status::text, count(*) FROM tickets GROUP BY status`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return err
		}
		counts[s] = float64(n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(ticketsDesc, prometheus.GaugeValue, n, s)
	}
	var evN, mailN, failed, quarantined int64
	var evAge, mailAge float64
	err = c.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM event_outbox WHERE sent_at IS NULL),
		       COALESCE((SELECT extract(epoch FROM now() - min(created_at)) FROM event_outbox WHERE sent_at IS NULL), 0)::float8,
		       (SELECT count(*) FROM mail_outbox WHERE status = 'pending'),
		       COALESCE((SELECT extract(epoch FROM now() - min(created_at)) FROM mail_outbox WHERE status = 'pending'), 0)::float8,
		       (SELECT count(*) FROM mail_outbox WHERE status = 'failed'),
		       (SELECT count(*) FROM quarantine WHERE released_at IS NULL)`).
		Scan(&evN, &evAge, &mailN, &mailAge, &failed, &quarantined)
	if err != nil {
		return err
	}
	ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(evN), "events")
	ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(mailN), "mails")
	ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, evAge, "events")
	ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, mailAge, "mails")
	ch <- prometheus.MustNewConstMetric(failedDesc, prometheus.GaugeValue, float64(failed))
	ch <- prometheus.MustNewConstMetric(quarDesc, prometheus.GaugeValue, float64(quarantined))
	return nil
}
