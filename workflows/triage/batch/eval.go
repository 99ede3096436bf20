package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"ticketd/tickets"
)

// Labelled is one line of a labelled set: a ticket, what it should come
// out as, and optionally a category and a language to group the results by
// (without them, by what the engine said).
type Labelled struct {
	Ticket
	ExpectedPriority tickets.Priority `json:"expected_priority"`
	ExpectedSkills   []string         `json:"expected_skills"`
	Category         string           `json:"category,omitempty"`
	Language         string           `json:"language,omitempty"`
}

// ReadSet reads a labelled set; every line must be a valid Labelled.
func ReadSet(path string) ([]Labelled, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read set: %w", err)
	}
	defer f.Close()
	var set []Labelled
	err = lines(f, func(n int, line []byte, lerr error) error {
		var l Labelled
		if lerr == nil {
			lerr = decodeStrict(line, &l)
		}
		if lerr == nil {
			l.ExpectedPriority, lerr = tickets.ParsePriority(string(l.ExpectedPriority))
		}
		if lerr == nil && l.ExpectedSkills == nil {
			lerr = errors.New("expected_skills is missing (write [] for none)")
		}
		if lerr != nil {
			return fmt.Errorf("%s:%d: %w", path, n, lerr)
		}
		l.ExpectedSkills = tickets.NormalizeSkills(l.ExpectedSkills)
		set = append(set, l)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("%s: no tickets", path)
	}
	return set, nil
}

// Scores are how an engine did on some tickets.
type Scores struct {
	N             int `json:"tickets"`
	PriorityRight int `json:"priority_exact"`
	// Confusion counts [expected][decided], in the order high, medium, low.
	Confusion      [3][3]int `json:"confusion"`
	High           int       `json:"expected_high"`
	HighMissed     int       `json:"high_missed"`
	NotHigh        int       `json:"expected_not_high"`
	FalseHigh      int       `json:"false_high"`
	SkillsExact    int       `json:"skills_exact"`
	SkillsTP       int       `json:"skills_true_positives"`
	SkillsFP       int       `json:"skills_false_positives"`
	SkillsFN       int       `json:"skills_false_negatives"`
	NeedSkills     int       `json:"expected_with_skills"`
	AssigneeHolds  int       `json:"assignee_holds_a_needed_skill"`
	AdminFallbacks int       `json:"admin_fallbacks"`
}

func prioIndex(p tickets.Priority) int {
	switch p {
	case tickets.PriorityHigh:
		return 0
	case tickets.PriorityMedium:
		return 1
	}
	return 2
}

func (s *Scores) add(l Labelled, d Decision) {
	s.N++
	want, got := l.ExpectedPriority, d.Priority
	s.Confusion[prioIndex(want)][prioIndex(got)]++
	if want == got {
		s.PriorityRight++
	}
	if want == tickets.PriorityHigh {
		s.High++
		if got != tickets.PriorityHigh {
			s.HighMissed++
		}
	} else {
		s.NotHigh++
		if got == tickets.PriorityHigh {
			s.FalseHigh++
		}
	}
	skills := tickets.NormalizeSkills(d.Skills)
	if slices.Equal(skills, l.ExpectedSkills) {
		s.SkillsExact++
	}
	for _, sk := range skills {
		if slices.Contains(l.ExpectedSkills, sk) {
			s.SkillsTP++
		} else {
			s.SkillsFP++
		}
	}
	for _, sk := range l.ExpectedSkills {
		if !slices.Contains(skills, sk) {
			s.SkillsFN++
		}
	}
	if len(l.ExpectedSkills) > 0 {
		s.NeedSkills++
		for _, sk := range d.assigneeSkills {
			if slices.Contains(l.ExpectedSkills, sk) {
				s.AssigneeHolds++
				break
			}
		}
	}
	if d.fallback {
		s.AdminFallbacks++
	}
}

func ratio(x, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(x) / float64(n)
}

// Rates are the scores as fractions, for the JSON report.
type Rates struct {
	PriorityExact  float64 `json:"priority_exact"`
	HighMissed     float64 `json:"high_missed"`
	FalseHigh      float64 `json:"false_high"`
	SkillsExact    float64 `json:"skills_exact"`
	SkillPrecision float64 `json:"skills_precision"`
	SkillRecall    float64 `json:"skills_recall"`
	AssigneeHolds  float64 `json:"assignee_holds_a_needed_skill"`
	AdminFallbacks float64 `json:"admin_fallbacks"`
}

// Rates computes the fractions.
func (s Scores) Rates() Rates {
	return Rates{
		PriorityExact:  ratio(s.PriorityRight, s.N),
		HighMissed:     ratio(s.HighMissed, s.High),
		FalseHigh:      ratio(s.FalseHigh, s.NotHigh),
		SkillsExact:    ratio(s.SkillsExact, s.N),
		SkillPrecision: ratio(s.SkillsTP, s.SkillsTP+s.SkillsFP),
		SkillRecall:    ratio(s.SkillsTP, s.SkillsTP+s.SkillsFN),
		AssigneeHolds:  ratio(s.AssigneeHolds, s.NeedSkills),
		AdminFallbacks: ratio(s.AdminFallbacks, s.N),
	}
}

// Miss is a ticket that came out otherwise than labelled.
type Miss struct {
	ID               json.RawMessage  `json:"id"`
	Subject          string           `json:"subject"`
	ExpectedPriority tickets.Priority `json:"expected_priority"`
	Priority         tickets.Priority `json:"priority"`
	ExpectedSkills   []string         `json:"expected_skills"`
	Skills           []string         `json:"skills"`
	Assignee         *string          `json:"assignee"`
}

// Report is the result of an evaluation.
type Report struct {
	Name       string             `json:"name"`
	Engine     string             `json:"engine"`
	Total      Scores             `json:"total"`
	Rates      Rates              `json:"rates"`
	ByLanguage map[string]*Scores `json:"by_language"`
	ByCategory map[string]*Scores `json:"by_category"`
	Misses     []Miss             `json:"misses"`
}

// Evaluate triages every ticket of the set and scores the decisions.
func (t *Triager) Evaluate(ctx context.Context, name string, set []Labelled) (Report, error) {
	rep := Report{Name: name, ByLanguage: map[string]*Scores{}, ByCategory: map[string]*Scores{}, Misses: []Miss{}}
	engines := map[string]bool{}
	for i, l := range set {
		d, err := t.Triage(ctx, l.Ticket, int64(i+1))
		if err != nil {
			return Report{}, fmt.Errorf("ticket %s: %w", l.ID, err)
		}
		rep.Add(l, d)
		engines[d.Engine] = true
	}
	var names []string
	for e := range engines {
		names = append(names, e)
	}
	sort.Strings(names)
	rep.Engine = strings.Join(names, ", ")
	rep.Rates = rep.Total.Rates()
	return rep, nil
}

// Add scores one decision.
func (rep *Report) Add(l Labelled, d Decision) {
	rep.Total.add(l, d)
	lang, cat := l.Language, l.Category
	if lang == "" {
		lang = d.Language
	}
	if cat == "" {
		cat = d.Category
	}
	for _, g := range []struct {
		m   map[string]*Scores
		key string
	}{{rep.ByLanguage, lang}, {rep.ByCategory, cat}} {
		if g.m[g.key] == nil {
			g.m[g.key] = &Scores{}
		}
		g.m[g.key].add(l, d)
	}
	skills := tickets.NormalizeSkills(d.Skills)
	if d.Priority != l.ExpectedPriority || !slices.Equal(skills, l.ExpectedSkills) {
		rep.Misses = append(rep.Misses, Miss{ID: l.ID, Subject: l.Subject, ExpectedPriority: l.ExpectedPriority,
			Priority: d.Priority, ExpectedSkills: l.ExpectedSkills, Skills: skills, Assignee: d.Assignee})
	}
	rep.Rates = rep.Total.Rates()
}

func pct(x, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*ratio(x, n))
}

// WriteText prints the report as tables: the totals, the confusion matrix,
// and the same metrics per language and per category; with misses, every
// ticket that came out otherwise than labelled.
func (rep Report) WriteText(w io.Writer, misses bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	s := rep.Total
	fmt.Fprintf(tw, "%s: %d tickets, engine %s\n\n", rep.Name, s.N, rep.Engine)
	fmt.Fprintf(tw, "metric\tvalue\t\n")
	fmt.Fprintf(tw, "priority exact\t%s\t(%d/%d)\n", pct(s.PriorityRight, s.N), s.PriorityRight, s.N)
	fmt.Fprintf(tw, "high missed (came out medium or low)\t%s\t(%d/%d)\n", pct(s.HighMissed, s.High), s.HighMissed, s.High)
	fmt.Fprintf(tw, "false high (not-high made high)\t%s\t(%d/%d)\n", pct(s.FalseHigh, s.NotHigh), s.FalseHigh, s.NotHigh)
	fmt.Fprintf(tw, "skills exact set\t%s\t(%d/%d)\n", pct(s.SkillsExact, s.N), s.SkillsExact, s.N)
	fmt.Fprintf(tw, "skills precision\t%s\t(%d/%d)\n", pct(s.SkillsTP, s.SkillsTP+s.SkillsFP), s.SkillsTP, s.SkillsTP+s.SkillsFP)
	fmt.Fprintf(tw, "skills recall\t%s\t(%d/%d)\n", pct(s.SkillsTP, s.SkillsTP+s.SkillsFN), s.SkillsTP, s.SkillsTP+s.SkillsFN)
	fmt.Fprintf(tw, "assignee holds a needed skill\t%s\t(%d/%d)\n", pct(s.AssigneeHolds, s.NeedSkills), s.AssigneeHolds, s.NeedSkills)
	fmt.Fprintf(tw, "fell back to the admin\t%s\t(%d/%d)\n", pct(s.AdminFallbacks, s.N), s.AdminFallbacks, s.N)
	fmt.Fprintf(tw, "\npriority confusion\tdecided high\tmedium\tlow\t\n")
	for i, name := range []string{"expected high", "expected medium", "expected low"} {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", name, s.Confusion[i][0], s.Confusion[i][1], s.Confusion[i][2])
	}
	for _, g := range []struct {
		title string
		m     map[string]*Scores
	}{{"language", rep.ByLanguage}, {"category", rep.ByCategory}} {
		fmt.Fprintf(tw, "\n%s\tn\tprio exact\thigh missed\tfalse high\tskills exact\tprecision\trecall\tassignee ok\tfallback\t\n", g.title)
		keys := make([]string, 0, len(g.m))
		for k := range g.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s := g.m[k]
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", k, s.N, pct(s.PriorityRight, s.N),
				pct(s.HighMissed, s.High), pct(s.FalseHigh, s.NotHigh), pct(s.SkillsExact, s.N),
				pct(s.SkillsTP, s.SkillsTP+s.SkillsFP), pct(s.SkillsTP, s.SkillsTP+s.SkillsFN),
				pct(s.AssigneeHolds, s.NeedSkills), pct(s.AdminFallbacks, s.N))
		}
	}
	if misses && len(rep.Misses) > 0 {
		fmt.Fprintf(tw, "\nmisses\tpriority\tskills\t\n")
		for _, m := range rep.Misses {
			fmt.Fprintf(tw, "%s %s\t%s -> %s\t%v -> %v\t\n", m.ID, clipSubject(m.Subject), m.ExpectedPriority, m.Priority, m.ExpectedSkills, m.Skills)
		}
	}
	return tw.Flush()
}

func clipSubject(s string) string {
	if r := []rune(s); len(r) > 50 {
		return string(r[:49]) + "…"
	}
	return s
}
