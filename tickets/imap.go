package tickets

import (
	"context"
	"fmt"
)

// IMAPCheckpoint is how far the poller of one mailbox got.
type IMAPCheckpoint struct {
	// Mailbox is the checkpoint key, imap://user@host:port/Mailbox, never
	// with a password.
	Mailbox string
	// UIDValidity is the mailbox's UIDVALIDITY the UIDs belong to
	// (RFC 9051 2.3.1.1).
	UIDValidity uint32
	// LastUID is the highest UID up to which every message was handled.
	LastUID uint32
}

// IMAPCheckpoint returns the checkpoint of mailbox, ErrNotFound when it was
// never polled.
func (s *Store) IMAPCheckpoint(ctx context.Context, mailbox string) (IMAPCheckpoint, error) {
	cp := IMAPCheckpoint{Mailbox: mailbox}
	var validity, last int64
	err := s.db.QueryRow(ctx, `SELECT uidvalidity, last_uid FROM imap_checkpoints WHERE mailbox = $1`,
		mailbox).Scan(&validity, &last)
	if err != nil {
		return IMAPCheckpoint{}, fmt.Errorf("select imap checkpoint of %s: %w", mailbox, notFound(err))
	}
	cp.UIDValidity, cp.LastUID = uint32(validity), uint32(last)
	return cp, nil
}

// SaveIMAPCheckpoint records the checkpoint, replacing the previous one.
func (s *Store) SaveIMAPCheckpoint(ctx context.Context, cp IMAPCheckpoint) error {
	_, err := s.db.Exec(ctx, `
		INSERT INTO imap_checkpoints (mailbox, uidvalidity, last_uid, updated_at)
		VALUES ($1, $2, $3, now())
		ON CONFLICT (mailbox) DO UPDATE
			SET uidvalidity = EXCLUDED.uidvalidity, last_uid = EXCLUDED.last_uid, updated_at = now()`,
		cp.Mailbox, int64(cp.UIDValidity), int64(cp.LastUID))
	if err != nil {
		return fmt.Errorf("save imap checkpoint of %s: %w", cp.Mailbox, err)
	}
	return nil
}
