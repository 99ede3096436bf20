package triage

import (
	"context"

	"ticketd/tickets"
)

// Desk is what triage knows of the desk a ticket came to: the skills its
// staff hold (the vocabulary), the words admins gave skills on the skills
// page, and the saved replies.
type Desk struct {
	Vocabulary   []string
	SkillTerms   map[string][]string
	SavedReplies []tickets.SavedReply
}

// Input is the triage input of a ticket at this desk.
func (d Desk) Input(ticketID int64, subject, body string) Input {
	return Input{TicketID: ticketID, Subject: subject, Body: body, Vocabulary: d.Vocabulary,
		SkillTerms: d.SkillTerms, SavedReplies: d.SavedReplies}
}

// LoadDesk reads the desk from the database.
func LoadDesk(ctx context.Context, st *tickets.Store) (Desk, error) {
	vocab, err := st.SkillVocabulary(ctx)
	if err != nil {
		return Desk{}, err
	}
	defs, err := st.SkillDefinitions(ctx)
	if err != nil {
		return Desk{}, err
	}
	replies, err := st.SavedReplies(ctx)
	if err != nil {
		return Desk{}, err
	}
	d := Desk{Vocabulary: vocab, SavedReplies: replies}
	for _, def := range defs {
		if len(def.Terms) > 0 {
			if d.SkillTerms == nil {
				d.SkillTerms = map[string][]string{}
			}
			d.SkillTerms[def.Name] = def.Terms
		}
	}
	return d, nil
}
