package mailparse

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestCleanTextShortcut: text trimmed by slicing, when no line but the last
// ends in blanks, agrees with the line by line cleaning.
func TestCleanTextShortcut(t *testing.T) {
	// slow trims every line, as cleanText does when the shortcut does
	// not apply.
	slow := func(s string) string {
		s = strings.Map(textRune, normalizeNewlines(s))
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimRightFunc(l, isTrailingBlank)
		}
		return strings.Trim(strings.Join(lines, "\n"), "\n")
	}
	r := rand.New(rand.NewPCG(5, 6))
	const chars = "ab \t\n\r\x00\u00a0\ufeffé\u200b\u200d\u2800👨"
	for i := range 5000 {
		var b strings.Builder
		for range r.IntN(30) {
			b.WriteString(string([]rune(chars)[r.IntN(len([]rune(chars)))]))
		}
		s := b.String()
		if got, want := cleanText(s), slow(s); got != want {
			t.Fatalf("case %d: cleanText(%q) = %q, line by line %q", i, s, got, want)
		}
	}
}
