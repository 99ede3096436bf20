package triage_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"ticketd/tickets"
	"ticketd/workflows/triage"
)

// labelledVocabulary is the moderators' skill vocabulary the labelled set
// was written against.
var labelledVocabulary = []string{"accounts", "billing", "email", "kubernetes", "linux", "mobile", "networking", "postgres", "security", "windows"}

type labelled struct {
	Subject  string           `json:"subject"`
	Body     string           `json:"body"`
	Priority tickets.Priority `json:"priority"`
	Skills   []string         `json:"skills"`
}

func loadLabelled(t testing.TB, path string) []labelled {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []labelled
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l labelled
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("%s:%d: %v", path, n, err)
		}
		for _, s := range l.Skills {
			if !slices.Contains(labelledVocabulary, s) {
				t.Fatalf("%s:%d: skill %q is not in the vocabulary", path, n, s)
			}
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// accuracy is how the rules engine does on a labelled set.
type accuracy struct {
	n             int
	priorityRight int
	confusion     map[[2]tickets.Priority]int // [want, got]
	skillsExact   int
	tp, fp, fn    int
	jaccardSum    float64
	misses        []string
}

func measure(t testing.TB, set []labelled) accuracy {
	t.Helper()
	rules := triage.NewRules(triage.RulesOptions{})
	a := accuracy{confusion: map[[2]tickets.Priority]int{}}
	for i, l := range set {
		res, _, err := rules.Analyze(context.Background(), triage.Input{TicketID: int64(i + 1),
			Subject: l.Subject, Body: l.Body, Vocabulary: labelledVocabulary})
		if err != nil {
			t.Fatalf("%q: %v", l.Subject, err)
		}
		a.n++
		a.confusion[[2]tickets.Priority{l.Priority, res.Priority}]++
		if res.Priority == l.Priority {
			a.priorityRight++
		}
		want := tickets.NormalizeSkills(l.Skills)
		if slices.Equal(want, res.Skills) {
			a.skillsExact++
		}
		inter := 0
		for _, s := range res.Skills {
			if slices.Contains(want, s) {
				inter++
				a.tp++
			} else {
				a.fp++
			}
		}
		a.fn += len(want) - inter
		union := len(want) + len(res.Skills) - inter
		if union == 0 {
			a.jaccardSum++
		} else {
			a.jaccardSum += float64(inter) / float64(union)
		}
		if res.Priority != l.Priority || !slices.Equal(want, res.Skills) {
			a.misses = append(a.misses, fmt.Sprintf("%-45q priority %s->%s skills %v->%v", l.Subject, l.Priority, res.Priority, want, res.Skills))
		}
	}
	return a
}

func (a accuracy) report(t testing.TB, name string) {
	t.Helper()
	pct := func(x, n int) float64 { return 100 * float64(x) / float64(n) }
	t.Logf("%s: %d tickets", name, a.n)
	t.Logf("  priority accuracy      %5.1f%% (%d/%d)", pct(a.priorityRight, a.n), a.priorityRight, a.n)
	t.Logf("  skills exact set       %5.1f%% (%d/%d)", pct(a.skillsExact, a.n), a.skillsExact, a.n)
	t.Logf("  skills precision       %5.1f%%  recall %5.1f%%  mean Jaccard %.3f",
		pct(a.tp, a.tp+a.fp), pct(a.tp, a.tp+a.fn), a.jaccardSum/float64(a.n))
	t.Logf("  priority confusion (rows: labelled, columns: rules)")
	t.Logf("              high  medium  low")
	for _, want := range tickets.Priorities {
		t.Logf("    %-7s  %5d  %6d  %3d", want,
			a.confusion[[2]tickets.Priority{want, tickets.PriorityHigh}],
			a.confusion[[2]tickets.Priority{want, tickets.PriorityMedium}],
			a.confusion[[2]tickets.Priority{want, tickets.PriorityLow}])
	}
	if testing.Verbose() {
		for _, m := range a.misses {
			t.Logf("  miss: %s", m)
		}
	}
}

// TestRulesAccuracy measures the rules engine on the labelled set and holds
// it to the floors measured when the rules were written (91.7% priority,
// 0.928 mean skill Jaccard), so a change that makes it worse fails. The set
// was written before the rules, but the rules were then written while
// looking at it: this is in-sample. TestRulesHeldOut is the fair number.
func TestRulesAccuracy(t *testing.T) {
	set := loadLabelled(t, "testdata/labelled.jsonl")
	if len(set) < 60 {
		t.Fatalf("the labelled set has %d tickets, want at least 60", len(set))
	}
	a := measure(t, set)
	a.report(t, "labelled.jsonl")
	const (
		priorityFloor = 0.91
		jaccardFloor  = 0.92
	)
	if got := float64(a.priorityRight) / float64(a.n); got < priorityFloor {
		t.Errorf("priority accuracy %.3f is below the floor %.2f", got, priorityFloor)
	}
	if got := a.jaccardSum / float64(a.n); got < jaccardFloor {
		t.Errorf("mean skill Jaccard %.3f is below the floor %.2f", got, jaccardFloor)
	}
}

// TestRulesHeldOut reports the rules engine on 24 tickets written after
// the rules and measured once, never used to tune them: the honest estimate
// (62.5% priority, 0.701 mean skill Jaccard when written; the rules lean to
// medium). Tuning the rules on these misses would spend the set: write a new
// one instead.
func TestRulesHeldOut(t *testing.T) {
	set := loadLabelled(t, "testdata/heldout.jsonl")
	a := measure(t, set)
	a.report(t, "heldout.jsonl (not used to write the rules)")
	const (
		priorityFloor = 0.62
		jaccardFloor  = 0.70
	)
	if got := float64(a.priorityRight) / float64(a.n); got < priorityFloor {
		t.Errorf("priority accuracy %.3f is below the floor %.2f", got, priorityFloor)
	}
	if got := a.jaccardSum / float64(a.n); got < jaccardFloor {
		t.Errorf("mean skill Jaccard %.3f is below the floor %.2f", got, jaccardFloor)
	}
}

func BenchmarkRules(b *testing.B) {
	rules := triage.NewRules(triage.RulesOptions{})
	in := triage.Input{Subject: "Production database down", Body: "Our production PostgreSQL stopped accepting connections. Nobody can work.", Vocabulary: labelledVocabulary}
	for b.Loop() {
		if _, _, err := rules.Analyze(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}
