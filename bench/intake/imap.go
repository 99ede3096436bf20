package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/inbound"
	"ticketd/inbound/imappoller"
	"ticketd/inbound/imappoller/dovecot"
)

// imapRow appends the mails to a private Dovecot, then times the poller
// taking them all into ticketd; then times the same kind of mails sent by
// SMTP over one connection, which is how the poller works: one mail after
// the other.
func (b *bench) imapRow(ctx context.Context) error {
	n := *imapMails
	fmt.Fprintf(b.out, "IMAP intake: %d mails of 1 KB appended to Dovecot, then polled into ticketd (UID FETCH in batches of 50, \\Seen after each commit)\n", n)
	if err := dovecot.Available(); err != nil {
		return err
	}
	dc, err := dovecot.Start(ctx, dovecot.Options{Dir: filepath.Join(b.dir, "dovecot"), Users: map[string]string{"support": "pw"}})
	if err != nil {
		return err
	}
	defer dc.Stop()
	body := mailBody(1 << 10)
	if err := appendMails(dc.Addr, n, body); err != nil {
		return err
	}
	db, err := b.database(ctx, "bench_imap")
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, db)
	if err != nil {
		return err
	}
	defer pool.Close()
	in, err := newIntake(pool, discardLogger())
	if err != nil {
		return err
	}
	var done atomic.Int64
	all := make(chan struct{})
	u := (&url.URL{Scheme: "imap+insecure", User: url.UserPassword("support", "pw"), Host: dc.Addr, Path: "/INBOX"}).String()
	p, err := imappoller.New(imappoller.Options{
		URL: u, Pool: pool, Logger: discardLogger(),
		Deliver: func(ctx context.Context, raw []byte, m imappoller.Mail) error {
			_, err := in.Deliver(ctx, raw, inbound.Source{Kind: "imap", Mailbox: m.Mailbox, UID: m.UID})
			if err == nil && done.Add(1) == int64(n) {
				close(all)
			}
			return err
		},
		IsPermanent: func(err error) bool { return errors.Is(err, inbound.ErrRejected) },
	})
	if err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	start := time.Now()
	go func() { _ = p.Run(pctx); close(stopped) }()
	select {
	case <-all:
	case <-time.After(30 * time.Minute):
	}
	imapTime := time.Since(start)
	cancel()
	<-stopped
	if got := done.Load(); got != int64(n) {
		return fmt.Errorf("the poller delivered %d of %d mails in 30 minutes", got, n)
	}
	imapRate := float64(n) / imapTime.Seconds()

	srv, err := b.startServer("ticketd", db)
	if err != nil {
		return err
	}
	defer srv.stop()
	one := loadCount(srv.addr, 1, mailBody(1<<10), n, "imapcmp1")
	eight := loadCount(srv.addr, 8, mailBody(1<<10), n/8, "imapcmp8")
	fmt.Fprintf(b.out, "IMAP   %d mails in %.1fs: %.1f mails/s\n", n, imapTime.Seconds(), imapRate)
	fmt.Fprintf(b.out, "SMTP   the same mails over 1 connection: %.1f mails/s%s -> IMAP/SMTP %.2f\n",
		one.rate(), errNote(one), imapRate/one.rate())
	fmt.Fprintf(b.out, "SMTP   the same mails over 8 connections: %.1f mails/s%s -> IMAP/SMTP %.2f\n",
		eight.rate(), errNote(eight), imapRate/eight.rate())
	return nil
}

func appendMails(addr string, n int, body []byte) error {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login("support", "pw").Wait(); err != nil {
		return err
	}
	// Appends are pipelined in groups; Dovecot takes them in order.
	const group = 100
	for i := 0; i < n; i += group {
		var cmds []*imapclient.AppendCommand
		for j := i; j < min(i+group, n); j++ {
			id := fmt.Sprintf("imap-%d", j)
			msg := append([]byte(header(id, fmt.Sprintf("requester%d@client.bench.test", j%200))), body...)
			cmd := c.Append("INBOX", int64(len(msg)), nil)
			if _, err := cmd.Write(msg); err != nil {
				return err
			}
			if err := cmd.Close(); err != nil {
				return err
			}
			cmds = append(cmds, cmd)
		}
		for _, cmd := range cmds {
			if _, err := cmd.Wait(); err != nil {
				return fmt.Errorf("append to Dovecot: %w", err)
			}
		}
	}
	return nil
}
