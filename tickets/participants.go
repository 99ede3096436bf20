package tickets

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// PeopleNotAdded are the addresses of a ticket's opening mail that were
// not made its people because the ticket had MaxPeople already.
type PeopleNotAdded struct {
	Addresses []string // the first of them
	Total     int      // how many in all
	MaxPeople int      // the limit they met
}

// More is how many are not listed in Addresses.
func (n PeopleNotAdded) More() int { return n.Total - len(n.Addresses) }

// QueuePeopleNotAdded records the addresses of an opening mail that were
// not added to the ticket, in intake's transaction.
func (s *Store) QueuePeopleNotAdded(ctx context.Context, ticketID int64, n PeopleNotAdded) error {
	return s.later(ctx, fmt.Sprintf("record people not added to ticket %d", ticketID), `
		INSERT INTO ticket_people_not_added (ticket_id, addresses, total, max_people) VALUES ($1, $2, $3, $4)
		ON CONFLICT (ticket_id) DO NOTHING`, ticketID, nonNil(n.Addresses), n.Total, n.MaxPeople)
}

// PeopleNotAddedTo returns what QueuePeopleNotAdded recorded for a ticket;
// Total is 0 when every address was added.
func (s *Store) PeopleNotAddedTo(ctx context.Context, ticketID int64) (PeopleNotAdded, error) {
	var n PeopleNotAdded
	err := s.db.QueryRow(ctx, `SELECT addresses, total, max_people FROM ticket_people_not_added WHERE ticket_id = $1`,
		ticketID).Scan(&n.Addresses, &n.Total, &n.MaxPeople)
	if errors.Is(err, pgx.ErrNoRows) {
		return PeopleNotAdded{}, nil
	}
	if err != nil {
		return PeopleNotAdded{}, fmt.Errorf("select people not added to ticket %d: %w", ticketID, err)
	}
	return n, nil
}

// WasAssignee reports whether the user was ever assigned the ticket, by
// its audit trail (every assignment, by a person or by triage, is
// audited).
func (s *Store) WasAssignee(ctx context.Context, ticketID, userID int64) (bool, error) {
	var ok bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_log a JOIN users u ON u.id = $2
		WHERE a.ticket_id = $1 AND a.action = 'assign' AND lower(a.new_value) = lower(u.email))`, ticketID, userID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("look up assignments of ticket %d to user %d: %w", ticketID, userID, err)
	}
	return ok, nil
}
