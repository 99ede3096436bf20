package triage

import (
	"context"

	"ticketd/tickets"
)

// Desk is what triage knows of the desk a ticket came to: the skills its
// staff hold (the vocabulary).
type Desk struct {
	Vocabulary []string
}

// Input is the triage input of a ticket at this desk.
func (d Desk) Input(ticketID int64, subject, body string) Input {
	return Input{TicketID: ticketID, Subject: subject, Body: body, Vocabulary: d.Vocabulary}
}

// LoadDesk reads the desk from the database.
func LoadDesk(ctx context.Context, st *tickets.Store) (Desk, error) {
	vocab, err := st.SkillVocabulary(ctx)
	if err != nil {
		return Desk{}, err
	}
	return Desk{Vocabulary: vocab}, nil
}
