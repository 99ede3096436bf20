package imappoller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sort"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"ticketd/tickets"
)

// session connects, logs in, selects the mailbox and takes its mail until
// an error or the end of ctx. progressed reports whether it moved the
// checkpoint or took everything in the mailbox, which resets the reconnect
// backoff; a session that delivers mail it cannot mark done does neither.
func (p *Poller) session(ctx context.Context) (progressed bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("imap: panic while polling", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("imappoller: panic: %v", r)
		}
	}()
	newMail := make(chan struct{}, 1)
	handler := &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			// RFC 9051 7.4.1: EXISTS announces new messages.
			if d.NumMessages != nil {
				select {
				case newMail <- struct{}{}:
				default:
				}
			}
		},
	}
	c, err := p.dial(handler)
	if err != nil {
		return false, fmt.Errorf("connect to %s: %w", p.addr, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	if err := c.Login(p.user, p.password).Wait(); err != nil {
		if isNo(err) {
			return false, &configError{"the server refused the login: check the user and password in the IMAP URL", err}
		}
		return false, fmt.Errorf("login as %s: %w", p.user, err)
	}
	sel, err := c.Select(p.mailbox, nil).Wait()
	if err != nil {
		if isNo(err) {
			return false, &configError{fmt.Sprintf("cannot open mailbox %q: check the mailbox in the IMAP URL", p.mailbox), err}
		}
		return false, fmt.Errorf("select %s: %w", p.mailbox, err)
	}
	cp, err := p.checkpoint(ctx, sel.UIDValidity)
	if err != nil {
		return false, err
	}
	// RFC 2177 IDLE, part of IMAP4rev2 (RFC 9051 6.3.13).
	idle := c.Caps().Has(imap.CapIdle)
	p.log.Info("imap: mailbox open", "uidvalidity", cp.UIDValidity, "last_uid", cp.LastUID,
		"messages", sel.NumMessages, "idle", idle)
	for {
		select {
		case <-newMail:
		default:
		}
		before := cp.LastUID
		_, err := p.drain(ctx, c, &cp)
		if cp.LastUID != before {
			progressed = true
		}
		if err != nil {
			return progressed, err
		}
		// Everything in the mailbox is taken: a connection dropped while
		// waiting for more (a NAT forgetting it) is no failure in a row.
		progressed = true
		heard, err := p.wait(ctx, c, idle, newMail)
		if err != nil {
			return progressed, err
		}
		if !heard {
			// Nothing heard for a while: select the mailbox again. A
			// mailbox deleted and recreated under an open session
			// goes quiet on some servers (Dovecot) instead of ending
			// the session; its new UIDVALIDITY shows here.
			sel, err := c.Select(p.mailbox, nil).Wait()
			if err != nil {
				return progressed, fmt.Errorf("select %s again: %w", p.mailbox, err)
			}
			if sel.UIDValidity != cp.UIDValidity {
				if cp, err = p.checkpoint(ctx, sel.UIDValidity); err != nil {
					return progressed, err
				}
			}
		}
	}
}

func (p *Poller) dial(handler *imapclient.UnilateralDataHandler) (*imapclient.Client, error) {
	opts := &imapclient.Options{
		TLSConfig:             p.opt.TLSConfig,
		UnilateralDataHandler: handler,
		Dialer:                &net.Dialer{Timeout: p.opt.DialTimeout},
	}
	var (
		c   *imapclient.Client
		err error
	)
	switch p.security {
	case implicitTLS: // RFC 8314 3.3
		c, err = imapclient.DialTLS(p.addr, opts)
	case startTLS: // RFC 9051 6.2.1; a server without STARTTLS is refused
		c, err = imapclient.DialStartTLS(p.addr, opts)
	default:
		c, err = imapclient.DialInsecure(p.addr, opts)
	}
	if err != nil {
		return nil, err
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	return c, nil
}

func isNo(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo
}

// checkpoint loads the mailbox's checkpoint for this UIDVALIDITY. UIDs of
// another UIDVALIDITY mean nothing any more (RFC 9051 2.3.1.1): the mailbox
// was recreated or rebuilt, so the poller takes it again from UID 1. Mail it
// delivered before is then delivered again, and Deliver, which recognises a
// mail by its content, stores none of it twice.
func (p *Poller) checkpoint(ctx context.Context, validity uint32) (tickets.IMAPCheckpoint, error) {
	cp, err := p.store.IMAPCheckpoint(ctx, p.key)
	switch {
	case errors.Is(err, tickets.ErrNotFound):
		p.log.Info("imap: first poll of this mailbox: taking every message in it", "uidvalidity", validity)
	case err != nil:
		return cp, err
	case cp.UIDValidity != validity:
		p.log.Warn("imap: UIDVALIDITY changed: taking the mailbox again from UID 1; mail stored before is recognised and not stored twice",
			"old_uidvalidity", cp.UIDValidity, "uidvalidity", validity, "old_last_uid", cp.LastUID)
	default:
		return cp, nil
	}
	cp = tickets.IMAPCheckpoint{Mailbox: p.key, UIDValidity: validity}
	clear(p.unreadable) // UIDs of the old validity
	return cp, p.store.SaveIMAPCheckpoint(ctx, cp)
}

// drain delivers every message above the checkpoint, in batches, and
// returns how many it delivered.
func (p *Poller) drain(ctx context.Context, c *imapclient.Client, cp *tickets.IMAPCheckpoint) (int, error) {
	total := 0
	for {
		uids, err := p.newUIDs(c, cp.LastUID)
		if err != nil {
			return total, err
		}
		p.opt.Metrics.IMAPLag(p.key, len(uids))
		if len(uids) == 0 {
			return total, nil
		}
		for len(uids) > 0 {
			batch := uids[:min(len(uids), p.opt.BatchSize)]
			uids = uids[len(batch):]
			n, err := p.batch(ctx, c, cp, batch)
			total += n
			p.opt.Metrics.IMAPLag(p.key, len(uids)+len(batch)-n)
			if err != nil {
				return total, err
			}
		}
	}
}

// newUIDs lists the UIDs above last, ascending.
func (p *Poller) newUIDs(c *imapclient.Client, last uint32) ([]imap.UID, error) {
	// RFC 9051 6.4.4: "last+1:*" always holds the highest UID, even when
	// it is below last+1, so the result is filtered.
	crit := &imap.SearchCriteria{UID: []imap.UIDSet{{{Start: imap.UID(last + 1), Stop: 0}}}}
	data, err := c.UIDSearch(crit, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("search new messages: %w", err)
	}
	var uids []imap.UID
	for _, u := range data.AllUIDs() {
		if uint32(u) > last {
			uids = append(uids, u)
		}
	}
	sort.Slice(uids, func(i, j int) bool { return uids[i] < uids[j] })
	return uids, nil
}

// batch fetches the messages, delivers each as it arrives, marks the
// delivered ones \Seen (or moves them) and then advances the checkpoint.
func (p *Poller) batch(ctx context.Context, c *imapclient.Client, cp *tickets.IMAPCheckpoint, uids []imap.UID) (int, error) {
	fetch := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{
		UID: true,
		// RFC 9051 6.4.5: BODY.PEEK[] does not set \Seen; that waits
		// for the commit.
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	done := make(map[imap.UID]bool, len(uids))
	var delivered, rejected []imap.UID
	handle := func(uid imap.UID, raw []byte) error {
		err := p.deliver(ctx, raw, Mail{Mailbox: p.key, UIDValidity: cp.UIDValidity, UID: uint32(uid)})
		switch {
		case err == nil:
			delivered = append(delivered, uid)
		case p.opt.IsPermanent != nil && p.opt.IsPermanent(err):
			p.log.Error("imap: mail rejected for good; left in the mailbox, flagged, for a person to look at",
				"uid", uid, "err", err)
			p.opt.Metrics.MailRefused("imap", "rejected")
			rejected = append(rejected, uid)
		default:
			return fmt.Errorf("deliver uid %d: %w", uid, err)
		}
		done[uid] = true
		return nil
	}
	var failed error
	for failed == nil {
		msg := fetch.Next()
		if msg == nil {
			break
		}
		uid, raw, err := readFetched(msg)
		if err != nil {
			failed = err
			break
		}
		failed = handle(uid, raw)
	}
	if err := fetch.Close(); err != nil && failed == nil && !isNo(err) {
		failed = fmt.Errorf("fetch: %w", err)
	}
	// A UID the FETCH did not return was expunged meanwhile, or the
	// server refused it (the whole FETCH then answers NO), or it sent the
	// message in a way go-imap does not match to a UID FETCH (the UID
	// after the body). Each is looked at on its own.
	for _, u := range uids {
		if failed != nil {
			break
		}
		if done[u] {
			continue
		}
		raw, exists, err := p.fetchOne(c, u)
		switch {
		case !exists && err == nil:
			done[u] = true
		case err != nil && isNo(err) && p.refused(u) >= maxRefusals:
			p.log.Error("imap: the server refuses to return this message; left in the mailbox, flagged, for a person to look at",
				"uid", u, "refusals", maxRefusals, "err", err)
			p.opt.Metrics.MailRefused("imap", "unreadable")
			rejected = append(rejected, u)
			done[u] = true
		case err != nil:
			failed = fmt.Errorf("fetch uid %d: %w", u, err)
		default:
			failed = handle(u, raw)
		}
	}
	if len(delivered) > 0 {
		if err := p.markDelivered(c, imap.UIDSetNum(delivered...)); err != nil {
			return len(delivered), errors.Join(failed, err)
		}
	}
	if len(rejected) > 0 {
		err := c.Store(imap.UIDSetNum(rejected...), &imap.StoreFlags{
			Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged},
		}, nil).Close()
		if err != nil {
			return len(delivered), errors.Join(failed, fmt.Errorf("flag rejected mail: %w", err))
		}
	}
	last := cp.LastUID
	for _, u := range uids {
		if !done[u] {
			break
		}
		last = uint32(u)
	}
	if last != cp.LastUID {
		next := *cp
		next.LastUID = last
		// The checkpoint is saved even when ctx ends: the mail is stored
		// and marked already.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err := p.store.SaveIMAPCheckpoint(sctx, next)
		cancel()
		if err != nil {
			return len(delivered), errors.Join(failed, err)
		}
		*cp = next
	}
	if len(delivered) > 0 {
		p.log.Debug("imap: batch delivered", "delivered", len(delivered), "rejected", len(rejected), "last_uid", last)
	}
	return len(delivered), failed
}

// maxRefusals is how many times in a row the server may refuse to return
// a message before the poller flags it and goes on to the next.
const maxRefusals = 3

// refused counts a refusal of uid and returns how many there were in a
// row.
func (p *Poller) refused(uid imap.UID) int {
	p.unreadable[uid]++
	return p.unreadable[uid]
}

// fetchOne fetches one message by its sequence number, looked up from its
// UID; exists is false when the UID is gone.
func (p *Poller) fetchOne(c *imapclient.Client, uid imap.UID) (raw []byte, exists bool, err error) {
	found, err := c.Search(&imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(uid)}}, nil).Wait()
	if err != nil {
		return nil, false, fmt.Errorf("search uid %d: %w", uid, err)
	}
	seqs := found.AllSeqNums()
	if len(seqs) == 0 {
		return nil, false, nil
	}
	fetch := c.Fetch(imap.SeqSetNum(seqs[0]), &imap.FetchOptions{
		UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	var got imap.UID
	if msg := fetch.Next(); msg != nil {
		got, raw, err = readFetched(msg)
	}
	if cerr := fetch.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, true, err
	}
	if got != uid {
		// Expunges moved the sequence numbers meanwhile.
		return nil, true, fmt.Errorf("message %d is uid %d, not %d", seqs[0], got, uid)
	}
	delete(p.unreadable, uid)
	return raw, true, nil
}

// readFetched reads one FETCH response: its UID and the whole message.
func readFetched(msg *imapclient.FetchMessageData) (imap.UID, []byte, error) {
	var (
		uid imap.UID
		raw []byte
		got bool
	)
	for item := msg.Next(); item != nil; item = msg.Next() {
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			uid = it.UID
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil {
				continue
			}
			buf := make([]byte, it.Literal.Size())
			if _, err := io.ReadFull(it.Literal, buf); err != nil {
				return uid, nil, fmt.Errorf("read message uid %d: %w", uid, err)
			}
			raw, got = buf, true
		}
	}
	if uid == 0 || !got {
		return uid, nil, fmt.Errorf("fetch response for uid %d without the message", uid)
	}
	return uid, raw, nil
}

// deliver calls Deliver, turning a panic into an error.
func (p *Poller) deliver(ctx context.Context, raw []byte, m Mail) (err error) {
	dctx, cancel := context.WithTimeout(ctx, p.opt.DeliverTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("imap: panic in deliver", "uid", m.UID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("imappoller: deliver panicked: %v", r)
		}
	}()
	return p.opt.Deliver(dctx, raw, m)
}

// markDelivered marks delivered messages \Seen, or moves them to MoveTo.
func (p *Poller) markDelivered(c *imapclient.Client, set imap.UIDSet) error {
	if p.opt.MoveTo == "" {
		err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
		if err != nil {
			return fmt.Errorf("mark delivered mail seen: %w", err)
		}
		return nil
	}
	err := p.move(c, set)
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == imap.ResponseCodeTryCreate {
		// RFC 9051 7.1: TRYCREATE, the target folder does not exist.
		p.log.Info("imap: creating the folder for delivered mail", "folder", p.opt.MoveTo)
		if cerr := c.Create(p.opt.MoveTo, nil).Wait(); cerr != nil {
			return fmt.Errorf("create folder %q: %w", p.opt.MoveTo, cerr)
		}
		err = p.move(c, set)
	}
	if err != nil {
		return fmt.Errorf("move delivered mail to %q: %w", p.opt.MoveTo, err)
	}
	return nil
}

func (p *Poller) move(c *imapclient.Client, set imap.UIDSet) error {
	caps := c.Caps()
	if caps.Has(imap.CapMove) {
		// RFC 6851 MOVE.
		_, err := c.Move(set, p.opt.MoveTo).Wait()
		return err
	}
	// One command after the other: go-imap's own fallback sends STORE
	// and EXPUNGE without waiting for COPY, and would expunge mail that
	// a failed COPY did not copy.
	if _, err := c.Copy(set, p.opt.MoveTo).Wait(); err != nil {
		return err
	}
	flags := []imap.Flag{imap.FlagSeen, imap.FlagDeleted}
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: flags}, nil).Close(); err != nil {
		return err
	}
	if !caps.Has(imap.CapUIDPlus) {
		// A plain EXPUNGE would also remove what others marked
		// \Deleted: the mailbox's owner expunges these.
		return nil
	}
	// RFC 4315 2.1: UID EXPUNGE removes only these messages.
	return c.UIDExpunge(set).Close()
}

// wait returns when new mail may have arrived: at once if the server said
// so meanwhile (heard), else when IDLE hears of it (heard) or after
// IdleTimeout, or after PollInterval on a server without IDLE.
func (p *Poller) wait(ctx context.Context, c *imapclient.Client, idle bool, newMail <-chan struct{}) (heard bool, err error) {
	select {
	case <-newMail:
		return true, nil
	default:
	}
	if !idle {
		sleep(ctx, p.opt.PollInterval)
		return false, ctx.Err()
	}
	cmd, err := c.Idle()
	if err != nil {
		return false, fmt.Errorf("idle: %w", err)
	}
	t := time.NewTimer(p.opt.IdleTimeout)
	select {
	case <-newMail:
		heard = true
	case <-t.C:
	case <-ctx.Done():
	case <-c.Closed():
	}
	t.Stop()
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err := cmd.Close(); err != nil {
		return false, fmt.Errorf("end idle: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return false, fmt.Errorf("idle: %w", err)
	}
	return heard, nil
}
