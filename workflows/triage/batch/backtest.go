package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"ticketd/tickets"
	"ticketd/workflows/triage"
)

// BackTestOptions bound a back-test.
type BackTestOptions struct {
	// Tickets is how many of the newest Completed tickets take part; 0
	// means 5000.
	Tickets int
	// Learn is the share of them, the oldest, that is the history; the
	// rest is measured. 0 means 0.8.
	Learn float64
	// Logger receives the rules engine's warnings; nil discards them.
	Logger *slog.Logger
}

// BackTestReport is the same measure of the newer tickets, by the rules
// alone and by the rules with the history of the older ones.
type BackTestReport struct {
	Learned      int       `json:"learned_from"`
	Measured     int       `json:"measured"`
	Split        time.Time `json:"split"`
	RulesAlone   Report    `json:"rules_alone"`
	WithHistory  Report    `json:"with_history"`
	UsedHistory  int       `json:"decided_with_history"`
	HistoryScope string    `json:"history"`
}

// beforeFinder is the history as it was at a moment: Completed tickets
// opened before it.
type beforeFinder struct {
	st     *tickets.Store
	before time.Time
}

func (b beforeFinder) SimilarCompleted(ctx context.Context, q tickets.SimilarQuery) ([]tickets.SimilarTicket, error) {
	q.Before = b.before
	return b.st.SimilarCompleted(ctx, q)
}

// BackTest measures the rules engine on the desk's own Completed tickets,
// whose priority and skills are what staff settled on: it learns from the
// older ones and measures on the newer ones, once without the history and
// once with it. The newer tickets' own outcomes are never consulted for
// them: only tickets opened before the first measured one are history.
func BackTest(ctx context.Context, st *tickets.Store, o BackTestOptions) (BackTestReport, error) {
	if o.Tickets <= 0 {
		o.Tickets = 5000
	}
	if o.Learn <= 0 || o.Learn >= 1 {
		o.Learn = 0.8
	}
	all, err := st.CompletedTickets(ctx, o.Tickets)
	if err != nil {
		return BackTestReport{}, err
	}
	split := int(float64(len(all)) * o.Learn)
	if split < 1 || split >= len(all) {
		return BackTestReport{}, fmt.Errorf("%d Completed tickets are too few to learn from some and measure on others", len(all))
	}
	measured := all[split:]
	desk, err := triage.LoadDesk(ctx, st)
	if err != nil {
		return BackTestReport{}, err
	}
	rep := BackTestReport{Learned: split, Measured: len(measured), Split: measured[0].CreatedAt,
		HistoryScope: "Completed tickets opened before " + measured[0].CreatedAt.UTC().Format(time.RFC3339)}
	alone := &Triager{Analyzer: triage.NewRules(triage.RulesOptions{Logger: o.Logger}), Desk: desk, Staff: st}
	with := &Triager{Analyzer: triage.NewRules(triage.RulesOptions{Logger: o.Logger,
		Similar: beforeFinder{st: st, before: measured[0].CreatedAt}}), Desk: desk, Staff: st}
	rep.RulesAlone = Report{Name: "rules alone", Engine: "rules", ByLanguage: map[string]*Scores{}, ByCategory: map[string]*Scores{}, Misses: []Miss{}}
	rep.WithHistory = Report{Name: "rules with history", Engine: "rules, rules+history", ByLanguage: map[string]*Scores{}, ByCategory: map[string]*Scores{}, Misses: []Miss{}}
	for _, t := range measured {
		if err := ctx.Err(); err != nil {
			return BackTestReport{}, err
		}
		id := []byte(strconv.FormatInt(t.ID, 10))
		l := Labelled{Ticket: Ticket{ID: id, Subject: t.Subject}, ExpectedPriority: t.Priority,
			ExpectedSkills: tickets.NormalizeSkills(t.Skills), Category: t.Category, Language: t.Language}
		for _, r := range []struct {
			tr  *Triager
			rep *Report
		}{{alone, &rep.RulesAlone}, {with, &rep.WithHistory}} {
			d, err := r.tr.decide(ctx, id, t.Subject, t.Description, t.ID)
			if err != nil {
				return BackTestReport{}, fmt.Errorf("ticket %d: %w", t.ID, err)
			}
			r.rep.Add(l, d)
			if r.tr == with && d.Engine == "rules+history" {
				rep.UsedHistory++
			}
		}
	}
	if rep.Measured == 0 {
		return BackTestReport{}, errors.New("no ticket to measure")
	}
	return rep, nil
}
