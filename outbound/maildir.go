package outbound

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// Maildir is a Transport that writes each mail into a Maildir instead of
// sending it: what `make dev` uses when no relay is configured, so every
// mail ticketd would send can be read with any mail client (mutt -f DIR).
type Maildir struct {
	dir  string
	host string
	seq  atomic.Uint64
}

// NewMaildir creates dir and its tmp, new and cur folders when missing.
func NewMaildir(dir string) (*Maildir, error) {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("outbound: create maildir: %w", err)
		}
	}
	host, _ := os.Hostname()
	// The maildir spec: "/" and ":" in the host part become \057 and \072.
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	if host == "" {
		host = "localhost"
	}
	return &Maildir{dir: dir, host: host}, nil
}

// Dir is the maildir's path.
func (m *Maildir) Dir() string { return m.dir }

// Send writes the mail, preceded by Return-Path and Delivered-To fields
// that keep its envelope, to tmp/, syncs it, and renames it into new/ (the
// maildir delivery protocol: a reader never sees half a file).
func (m *Maildir) Send(ctx context.Context, from string, to []string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return temporary(err, "maildir")
	}
	var head bytes.Buffer
	// RFC 5321 4.4: Return-Path carries the envelope sender.
	fmt.Fprintf(&head, "Return-Path: <%s>\r\n", from)
	for _, rcpt := range to {
		fmt.Fprintf(&head, "Delivered-To: %s\r\n", rcpt)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	now := time.Now()
	name := fmt.Sprintf("%d.M%dP%dQ%dR%s.%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(),
		m.seq.Add(1), hex.EncodeToString(rnd[:]), m.host)
	tmp := filepath.Join(m.dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return temporary(err, "maildir")
	}
	_, err = f.Write(append(head.Bytes(), data...))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(m.dir, "new", name))
	}
	if err != nil {
		os.Remove(tmp)
		return temporary(err, "maildir")
	}
	// The rename is durable once the directory is synced.
	if d, err := os.Open(filepath.Join(m.dir, "new")); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return temporary(err, "maildir: sync new/")
		}
	}
	return nil
}
