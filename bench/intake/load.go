package main

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// result is what one load row measured.
type result struct {
	n        int
	elapsed  time.Duration
	lat      []time.Duration // end of DATA -> 250, sorted
	errs     int
	firstErr string
}

// merge adds another run of the same row.
func (r *result) merge(o result) {
	r.n += o.n
	r.elapsed += o.elapsed
	r.lat = append(r.lat, o.lat...)
	r.errs += o.errs
	if r.firstErr == "" {
		r.firstErr = o.firstErr
	}
}

func (r *result) sorted() result {
	sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
	return *r
}

func (r result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.n) / r.elapsed.Seconds()
}

func (r result) pct(p int) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := len(r.lat) * p / 100
	if i >= len(r.lat) {
		i = len(r.lat) - 1
	}
	return r.lat[i]
}

// load runs clients connections sending mail of about size bytes for d.
func load(addr string, clients int, body []byte, d time.Duration, prefix string) result {
	deadline := time.Now().Add(d)
	return drive(addr, clients, body, prefix, func(int) bool { return time.Now().Before(deadline) })
}

// loadCount has each of clients connections send n mails.
func loadCount(addr string, clients int, body []byte, n int, prefix string) result {
	return drive(addr, clients, body, prefix, func(i int) bool { return i < n })
}

func drive(addr string, clients int, body []byte, prefix string, more func(i int) bool) result {
	var (
		mu  sync.Mutex
		res result
		wg  sync.WaitGroup
	)
	start := time.Now()
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var lat []time.Duration
			errs, firstErr := 0, ""
			var c *smtp.Client
			for i := 0; more(i); i++ {
				if c == nil {
					var err error
					if c, err = dial(addr); err != nil {
						errs++
						if firstErr == "" {
							firstErr = err.Error()
						}
						time.Sleep(100 * time.Millisecond)
						continue
					}
				}
				l, err := sendOne(c, fmt.Sprintf("%s-%d-%d", prefix, g, i), body)
				if err != nil {
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
					c.Close()
					c = nil
					continue
				}
				lat = append(lat, l)
			}
			if c != nil {
				_ = c.Quit()
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.n += len(lat)
			res.errs += errs
			if res.firstErr == "" {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}(g)
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	sort.Slice(res.lat, func(i, j int) bool { return res.lat[i] < res.lat[j] })
	return res
}

func dial(addr string) (*smtp.Client, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return nil, err
	}
	if err := c.Hello("client.bench.test"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// sendOne sends a mail on an open connection and returns the time from the
// end of DATA to the 250.
func sendOne(c *smtp.Client, id string, body []byte) (time.Duration, error) {
	from := fmt.Sprintf("requester%d@client.bench.test", rand.IntN(200))
	head := header(id, from)
	if err := c.Mail(from, &smtp.MailOptions{Size: int64(len(head) + len(body))}); err != nil {
		return 0, err
	}
	if err := c.Rcpt(support, nil); err != nil {
		return 0, err
	}
	w, err := c.Data()
	if err != nil {
		return 0, err
	}
	if _, err := w.Write([]byte(head)); err != nil {
		return 0, err
	}
	if _, err := w.Write(body); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := w.Close(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

func header(id, from string) string {
	return fmt.Sprintf("From: Requester <%s>\r\nTo: Support <%s>\r\nSubject: Cannot log in to the portal (%s)\r\n"+
		"Message-ID: <%s@client.bench.test>\r\nDate: %s\r\nMIME-Version: 1.0\r\n",
		from, support, id, id, time.Now().UTC().Format(time.RFC1123Z))
}

const prose = "Hello, since this morning I cannot log in to the customer portal. " +
	"The page says my password is wrong, but I reset it twice and the reset mail arrives. " +
	"I tried Firefox and Chrome, cleared the cache, and a colleague has the same problem. " +
	"Could you have a look? We need the invoices from there before Friday. Thanks a lot. "

// textBody is the rest of a plain-text mail of about size bytes, such as a
// pasted log.
func textBody(size int) []byte {
	b := make([]byte, 0, size+200)
	b = append(b, "Content-Type: text/plain; charset=utf-8\r\n\r\n"...)
	line := wrap(prose)
	for len(b) < size {
		b = append(b, line...)
	}
	return b
}

// mailBody is the rest of a mail of about size bytes: plain text when small,
// else text with a base64 attachment, as large mail usually is.
func mailBody(size int) []byte {
	var b strings.Builder
	if size <= 4<<10 {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
		for b.Len() < size-400 {
			b.WriteString(wrap(prose))
		}
		b.WriteString("-- \r\nRequester\r\n")
		return []byte(b.String())
	}
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n")
	b.WriteString(wrap(prose + prose))
	b.WriteString("\r\n--b1\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\n" +
		"Content-Disposition: attachment; filename=\"invoice.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	raw := make([]byte, (size-b.Len()-200)*3/4)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n--b1--\r\n")
	return []byte(b.String())
}

func wrap(s string) string {
	var b strings.Builder
	line := 0
	for _, w := range strings.Fields(s) {
		if line+len(w) > 72 {
			b.WriteString("\r\n")
			line = 0
		} else if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteString("\r\n")
	return b.String()
}
