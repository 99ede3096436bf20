package smtpserver_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"ticketd/inbound/smtpserver"
	"ticketd/metrics"
	"ticketd/pgtest"
)

// dialFrom connects to addr from a local address of its own (on Linux the
// whole of 127.0.0.0/8 is loopback), as another client host would.
func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// TestOneClientCannotHoldAllSessions: a client that opens connection after
// connection gets its share of the sessions and then 421 4.7.0; mail from
// another client address still gets through, and the refusals are counted.
func TestOneClientCannotHoldAllSessions(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	rs := &rawStore{pool: pool}
	met := newMetrics(t)
	_, addr := start(t, smtpserver.Options{Deliver: rs.Deliver, MaxSessions: 10, MaxSessionsPerClient: 3, Metrics: met.m})

	var held []*rawConn
	for range 3 {
		c := dialRaw(t, addr)
		if r := c.reply(); !strings.HasPrefix(r, "220") {
			t.Fatalf("session %d greeted %q", len(held)+1, r)
		}
		held = append(held, c)
	}
	for i := range 5 {
		over := dialRaw(t, addr)
		if r := over.reply(); !strings.HasPrefix(r, "421 4.7.0") {
			t.Fatalf("connection %d over the client's share greeted %q, want 421 4.7.0", i+4, r)
		}
	}
	// Another host sends its mail meanwhile, with a real client.
	c := smtp.NewClient(dialFrom(t, "127.0.0.2", addr))
	if err := c.Hello("other.example.org"); err != nil {
		t.Fatalf("another client is not greeted: %v", err)
	}
	if err := c.SendMail("bob@example.org", []string{"support@example.test"},
		strings.NewReader("From: bob@example.org\r\nSubject: still here\r\nMessage-ID: <other-host@example.org>\r\n\r\nhi\r\n")); err != nil {
		t.Fatalf("mail from another client: %v", err)
	}
	c.Quit()
	if n := countWith(t, pool, "other-host@example.org"); n != 1 {
		t.Errorf("the other client's mail stored %d times", n)
	}
	if got := met.value(t, `ticketd_mails_refused_total{reason="client_sessions",source="smtp"}`); got != 5 {
		t.Errorf("client_sessions refusals counted %v, want 5", got)
	}
	// When the client lets a session go, it may open another.
	held[0].cmd("QUIT")
	held[0].nc.Close()
	var greeting string
	for range 100 {
		greeting = dialRaw(t, addr).reply()
		if strings.HasPrefix(greeting, "220") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.HasPrefix(greeting, "220") {
		t.Errorf("after a QUIT the client still gets %q", greeting)
	}
}

// TestSilentClientIsCutOff: a client that connects and says nothing is
// answered 421 and dropped after FirstCommandTimeout, well before the
// ReadTimeout that a client in the middle of its mail gets.
func TestSilentClientIsCutOff(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	rs := &rawStore{pool: pool}
	met := newMetrics(t)
	_, addr := start(t, smtpserver.Options{Deliver: rs.Deliver, ReadTimeout: 5 * time.Minute,
		FirstCommandTimeout: 300 * time.Millisecond, Metrics: met.m})

	silent := dialRaw(t, addr)
	if r := silent.reply(); !strings.HasPrefix(r, "220") {
		t.Fatalf("greeting %q", r)
	}
	if r := silent.reply(); !strings.HasPrefix(r, "421 4.4.2") {
		t.Fatalf("a silent client got %q, want 421 4.4.2", r)
	}
	if _, err := silent.br.readLine(); err == nil {
		t.Error("the silent client's connection is still open")
	}
	if got := met.value(t, `ticketd_mails_refused_total{reason="silent",source="smtp"}`); got != 1 {
		t.Errorf("silent sessions counted %v, want 1", got)
	}

	// A client that spoke waits between commands as long as ReadTimeout
	// allows: longer than the first command's limit.
	talker := dialRaw(t, addr)
	talker.reply()
	if r := talker.cmd("EHLO client.example.org"); !strings.HasPrefix(r, "250") {
		t.Fatalf("EHLO: %q", r)
	}
	time.Sleep(900 * time.Millisecond)
	if r := talker.cmd("MAIL FROM:<ann@example.org>"); !strings.HasPrefix(r, "250") {
		t.Errorf("after a pause between commands: %q", r)
	}
}

// testMetrics is ticketd's metrics on a registry of the test's own.
type testMetrics struct {
	reg *prometheus.Registry
	m   *metrics.Metrics
}

func newMetrics(t *testing.T) testMetrics {
	reg := prometheus.NewRegistry()
	return testMetrics{reg: reg, m: metrics.New(reg, nil, discard())}
}

// value is the sample named like name{label="v",...}, or -1 when there is
// none.
func (tm testMetrics) value(t *testing.T, sample string) float64 {
	t.Helper()
	fams, err := tm.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			if f.GetName()+"{"+strings.Join(labels, ",")+"}" == sample {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}
