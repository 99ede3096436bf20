package triage

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode"

	"ticketd/tickets"
)

// The desk's history: Completed tickets carry the priority and skills staff
// settled on, after whatever they corrected. A new ticket much like several
// of them is likely to end the same way, so the rules take the outcome the
// most similar ones agree on, and say which they were.

// Bounds on learning from history.
const (
	// precedentsAsked is how many similar tickets the search returns.
	precedentsAsked = 8
	// alike is how much of their words two tickets must share (Jaccard
	// of their content words) to count as alike.
	alike = 0.3
	// veryAlike is enough for one ticket alone to count.
	veryAlike = 0.6
	// agreement is the share of the alike tickets' weight an outcome
	// needs.
	agreement = 2.0 / 3
)

// precedent is a Completed ticket like the one being triaged.
type precedent struct {
	tickets.SimilarTicket
	similarity float64
}

// contentWords are the words of a text that say what it is about: folded,
// of three letters or more, not stop words.
func contentWords(s string) map[string]bool {
	out := map[string]bool{}
	for _, w := range strings.FieldsFunc(fold(s), func(r rune) bool { return !unicode.IsLetter(r) }) {
		if len([]rune(w)) >= 3 && !tickets.IsStopword(w) {
			out[w] = true
		}
	}
	return out
}

func jaccard(a, b map[string]bool) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	inter := 0
	for w := range a {
		if b[w] {
			inter++
		}
	}
	return float64(inter) / float64(len(a)+len(b)-inter)
}

// alikeOf keeps the similar tickets that are alike enough, most alike
// first.
func alikeOf(text string, found []tickets.SimilarTicket) []precedent {
	words := contentWords(text)
	var out []precedent
	for _, s := range found {
		sim := jaccard(words, contentWords(s.Subject+"\n"+s.Text))
		if sim >= alike {
			out = append(out, precedent{s, sim})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].similarity > out[j].similarity })
	return out
}

// learned is what the history says of a ticket: the outcome the alike
// tickets agree on, and which they are.
type learned struct {
	priority tickets.Priority // "" when they do not agree
	skills   []string         // nil when they do not agree
	like     []int64
}

// learn finds the outcome alike tickets agree on: a priority or set of
// skills holding two thirds of their weight (each weighs how alike it is),
// backed by two tickets or by one very alike. Skills no staff member holds
// any more are left out.
func learn(ps []precedent, vocabulary []string) learned {
	var l learned
	if len(ps) == 0 || len(ps) == 1 && ps[0].similarity < veryAlike {
		return l
	}
	total := 0.0
	prio := map[tickets.Priority]float64{}
	sets := map[string]float64{}
	for _, p := range ps {
		total += p.similarity
		prio[p.Priority] += p.similarity
		sets[strings.Join(tickets.NormalizeSkills(p.Skills), ",")] += p.similarity
	}
	var likeP, likeS []int64
	for p, w := range prio {
		if w >= agreement*total {
			l.priority = p
		}
	}
	for set, w := range sets {
		if w < agreement*total || set == "" {
			continue
		}
		for _, sk := range strings.Split(set, ",") {
			if slices.Contains(vocabulary, sk) {
				l.skills = append(l.skills, sk)
			}
		}
	}
	for _, p := range ps {
		if p.Priority == l.priority {
			likeP = append(likeP, p.ID)
		}
		if l.skills != nil && strings.Join(tickets.NormalizeSkills(p.Skills), ",") == strings.Join(l.skills, ",") {
			likeS = append(likeS, p.ID)
		}
	}
	switch {
	case l.priority != "" && l.skills != nil:
		l.like = intersect(likeP, likeS)
		if len(l.like) == 0 {
			l.like = likeP
		}
	case l.priority != "":
		l.like = likeP
	default:
		l.like = likeS
	}
	if len(l.like) > 3 {
		l.like = l.like[:3]
	}
	return l
}

func intersect(a, b []int64) []int64 {
	var out []int64
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// reason says what the history decided: "like #812 and #907: printer,
// high".
func (l learned) reason() string {
	ids := make([]string, len(l.like))
	for i, id := range l.like {
		ids[i] = fmt.Sprintf("#%d", id)
	}
	who := strings.Join(ids, ", ")
	if i := strings.LastIndex(who, ", "); i >= 0 {
		who = who[:i] + " and " + who[i+2:]
	}
	var what []string
	if l.skills != nil {
		what = append(what, strings.Join(l.skills, ", "))
	}
	if l.priority != "" {
		what = append(what, string(l.priority))
	}
	return "like " + who + ": " + strings.Join(what, ", ")
}
