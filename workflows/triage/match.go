package triage

import (
	"regexp"
	"regexp/syntax"
	"strings"
)

// The rules hold hundreds of patterns, and a ticket matches few of them.
// Each pattern is split into its alternatives, and each alternative is run
// only when the text holds a piece of plain text it cannot match without:
// most are passed over at the cost of a substring search.

// gated is one alternative and the literal texts of which it needs one
// (none when that cannot be told).
type gated struct {
	re   *regexp.Regexp
	lits []string
}

// patterns is a pattern split into gated alternatives.
type patterns []gated

// compilePatterns splits a pattern at its top-level alternatives and
// compiles each with the literals it needs. It panics on a bad pattern, as
// regexp.MustCompile does: the patterns are the program's own.
func compilePatterns(pattern string) patterns {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		panic("triage: pattern " + pattern + ": " + err.Error())
	}
	alts := []*syntax.Regexp{re}
	if re.Op == syntax.OpAlternate {
		alts = re.Sub
	}
	out := make(patterns, 0, len(alts))
	for _, a := range alts {
		out = append(out, gated{re: regexp.MustCompile(a.String()), lits: needed(a)})
	}
	return out
}

// needed returns literal texts of which every match of re contains at
// least one; nil when that cannot be told (an optional part, case folding,
// a literal of one letter).
func needed(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 || len(re.Rune) < 2 {
			return nil
		}
		return []string{string(re.Rune)}
	case syntax.OpCapture, syntax.OpPlus:
		return needed(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min > 0 {
			return needed(re.Sub[0])
		}
	case syntax.OpConcat:
		// The most telling of the parts' needs: the one whose shortest
		// literal is longest. Adjacent literals join into one.
		var best []string
		better := func(c []string) {
			if c != nil && (best == nil || shortest(c) > shortest(best)) {
				best = c
			}
		}
		run := ""
		for _, s := range re.Sub {
			if s.Op == syntax.OpLiteral && s.Flags&syntax.FoldCase == 0 {
				run += string(s.Rune)
				continue
			}
			if len(run) >= 2 {
				better([]string{run})
			}
			run = ""
			better(needed(s))
		}
		if len(run) >= 2 {
			better([]string{run})
		}
		return best
	case syntax.OpAlternate:
		var all []string
		for _, s := range re.Sub {
			n := needed(s)
			if n == nil {
				return nil
			}
			all = append(all, n...)
		}
		return all
	}
	return nil
}

func shortest(lits []string) int {
	n := -1
	for _, l := range lits {
		if n < 0 || len(l) < n {
			n = len(l)
		}
	}
	return n
}

// may reports whether the text holds one of the literals the alternative
// needs.
func (g gated) may(text string) bool {
	if g.lits == nil {
		return true
	}
	for _, l := range g.lits {
		if strings.Contains(text, l) {
			return true
		}
	}
	return false
}

// candidates are the alternatives the text may match.
func (p patterns) candidates(text string, yield func(*regexp.Regexp) bool) {
	for _, g := range p {
		if g.may(text) && !yield(g.re) {
			return
		}
	}
}

// MatchString reports whether any alternative matches.
func (p patterns) MatchString(text string) bool {
	found := false
	p.candidates(text, func(re *regexp.Regexp) bool {
		found = re.MatchString(text)
		return !found
	})
	return found
}

// FindString returns the text of the first alternative that matches.
func (p patterns) FindString(text string) string {
	var m string
	p.candidates(text, func(re *regexp.Regexp) bool {
		m = re.FindString(text)
		return m == ""
	})
	return m
}

// ReplaceAllString replaces the matches of every alternative.
func (p patterns) ReplaceAllString(text, repl string) string {
	for _, g := range p {
		if g.may(text) {
			text = g.re.ReplaceAllString(text, repl)
		}
	}
	return text
}

// compileTerms compiles expressions into gated patterns; one that does
// not compile is left out.
func compileTerms(terms []string) patterns {
	var out patterns
	for _, t := range terms {
		re, err := regexp.Compile(t)
		if err != nil {
			continue
		}
		tree, err := syntax.Parse(t, syntax.Perl)
		if err != nil {
			continue
		}
		out = append(out, gated{re: re, lits: needed(tree)})
	}
	return out
}
