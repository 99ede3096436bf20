package tickets

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReturnedReport is a delivery report that came back to the return path of
// one mail ticketd sent (the token of bounces+<token>@domain named MailID),
// reporting that delivery to Address failed.
type ReturnedReport struct {
	MailID       int64
	UserID       int64  // the recipient's user the return path was made for; 0: none
	Address      string // the recipient the report names
	RawMessageID int64  // the stored report
	Detail       string // what the report said, for the People page
}

// BounceVerdict is what BelieveBounce made of a report.
type BounceVerdict struct {
	// Marked: the address is bouncing now (it may have been already).
	Marked bool
	Email  string // the user's address, when Marked
	// Why says why the report marks nobody, when not Marked.
	Why string
}

// BelieveBounce marks an address bouncing on a report that came back to the
// return path of mail r.MailID, when the report is about that mail's
// recipient and is the newest news about the address: the relay accepted
// no later mail to it, and its mark was not cleared since the mail was
// sent. The report is recorded with the mark (Bounces lists it). Run it in
// the transaction that stores the report.
func (s *Store) BelieveBounce(ctx context.Context, r ReturnedReport) (BounceVerdict, error) {
	addr := NormalizeEmail(r.Address)
	var (
		rcpts  []string
		sentAt time.Time
	)
	err := s.db.QueryRow(ctx, `SELECT recipients, COALESCE(sent_at, created_at) FROM mail_outbox WHERE id = $1`,
		r.MailID).Scan(&rcpts, &sentAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return BounceVerdict{Why: fmt.Sprintf("mail #%d of the return path is not in the outbox", r.MailID)}, nil
	}
	if err != nil {
		return BounceVerdict{}, fmt.Errorf("look up returned mail %d: %w", r.MailID, err)
	}
	sentTo := false
	for _, rc := range rcpts {
		sentTo = sentTo || NormalizeEmail(rc) == addr
	}
	if !sentTo {
		return BounceVerdict{Why: fmt.Sprintf("the report names %s, and mail #%d went to %v", addr, r.MailID, rcpts)}, nil
	}
	u, err := scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE lower(email) = $1 FOR UPDATE`, addr))
	if errors.Is(err, ErrNotFound) {
		return BounceVerdict{Why: "ticketd knows no user with the address " + addr}, nil
	}
	if err != nil {
		return BounceVerdict{}, fmt.Errorf("lock user %q: %w", addr, err)
	}
	if r.UserID != 0 && r.UserID != u.ID {
		return BounceVerdict{Why: fmt.Sprintf("the return path was made for user #%d, not for %s", r.UserID, addr)}, nil
	}
	var laterSent, clearedSince *time.Time
	err = s.db.QueryRow(ctx, `
		SELECT (SELECT max(sent_at) FROM mail_outbox
				WHERE recipients @> ARRAY[$1::text] AND status = 'sent' AND sent_at > $2 AND id <> $3),
			(SELECT max(cleared_at) FROM bounces WHERE user_id = $4 AND cleared_at > $2)`,
		addr, sentAt, r.MailID, u.ID).Scan(&laterSent, &clearedSince)
	if err != nil {
		return BounceVerdict{}, fmt.Errorf("look up later mail to %q: %w", addr, err)
	}
	switch {
	case laterSent != nil:
		return BounceVerdict{Why: fmt.Sprintf("the relay accepted a later mail to %s (%s): newer news than this report",
			addr, laterSent.UTC().Format(time.RFC3339))}, nil
	case clearedSince != nil:
		return BounceVerdict{Why: fmt.Sprintf("the mark of %s was cleared (%s) after mail #%d was sent",
			addr, clearedSince.UTC().Format(time.RFC3339), r.MailID)}, nil
	}
	var raw *int64
	if r.RawMessageID != 0 {
		raw = &r.RawMessageID
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO bounces (user_id, mail_id, raw_message_id, detail) VALUES ($1, $2, $3, $4)`,
		u.ID, r.MailID, raw, r.Detail); err != nil {
		return BounceVerdict{}, fmt.Errorf("record bounce of %q: %w", addr, err)
	}
	if _, err := s.db.Exec(ctx, `UPDATE users SET bouncing_since = COALESCE(bouncing_since, now()), updated_at = now()
		WHERE id = $1`, u.ID); err != nil {
		return BounceVerdict{}, fmt.Errorf("mark %q bouncing: %w", addr, err)
	}
	return BounceVerdict{Marked: true, Email: u.Email}, nil
}

// ClearBouncing clears the mark of a user by hand (an admin on the People
// page); reports about mail sent before now are not believed again. It
// reports whether the user was marked.
func (s *Store) ClearBouncing(ctx context.Context, userID int64, by Actor) (bool, error) {
	var cleared bool
	err := s.InTx(ctx, func(tx *Store) error {
		tag, err := tx.db.Exec(ctx, `UPDATE users SET bouncing_since = NULL, updated_at = now()
			WHERE id = $1 AND bouncing_since IS NOT NULL`, userID)
		if err != nil {
			return fmt.Errorf("clear bouncing user %d: %w", userID, err)
		}
		cleared = tag.RowsAffected() == 1
		if !cleared {
			return nil
		}
		if _, err := tx.db.Exec(ctx, `UPDATE bounces SET cleared_at = now(), cleared_by = $2, cleared_how = 'cleared by hand'
			WHERE user_id = $1 AND cleared_at IS NULL`, userID, by.UserID); err != nil {
			return fmt.Errorf("clear bounces of user %d: %w", userID, err)
		}
		return nil
	})
	return cleared, err
}

// BouncingAddress is a user marked bouncing, with the newest report that
// marked them.
type BouncingAddress struct {
	User         User
	ReportedAt   time.Time
	Detail       string
	RawMessageID *int64
	Reports      int // reports since the mark was last cleared
}

// BouncingAddresses lists the users marked bouncing, newest mark first.
func (s *Store) BouncingAddresses(ctx context.Context) ([]BouncingAddress, error) {
	rows, err := s.db.Query(ctx, `
		SELECT `+prefixed("u", userColumns)+`, COALESCE(b.created_at, u.bouncing_since), COALESCE(b.detail, ''),
			b.raw_message_id, COALESCE(b.n, 0)
		FROM users u
		LEFT JOIN LATERAL (
			SELECT created_at, detail, raw_message_id, count(*) OVER () AS n FROM bounces
			WHERE user_id = u.id AND cleared_at IS NULL ORDER BY id DESC LIMIT 1) b ON true
		WHERE u.bouncing_since IS NOT NULL
		ORDER BY u.bouncing_since DESC, u.id`)
	if err != nil {
		return nil, fmt.Errorf("select bouncing addresses: %w", err)
	}
	defer rows.Close()
	var out []BouncingAddress
	for rows.Next() {
		var b BouncingAddress
		u := &b.User
		if err := rows.Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.Skills, &u.PasswordHash, &u.Active,
			&u.BouncingSince, &u.LastAssignedAt, &u.CreatedAt, &u.UpdatedAt,
			&b.ReportedAt, &b.Detail, &b.RawMessageID, &b.Reports); err != nil {
			return nil, fmt.Errorf("select bouncing addresses: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select bouncing addresses: %w", err)
	}
	return out, nil
}
