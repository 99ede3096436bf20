package mailparse

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestCleanTextShortcut: text returned as it is agrees with the line by
// line cleaning.
func TestCleanTextShortcut(t *testing.T) {
	slow := func(s string) string {
		s = cleanText(s + "\n") // the shortcut never applies to text ending in a line break
		return s
	}
	r := rand.New(rand.NewPCG(5, 6))
	const chars = "ab \t\n\r\x00\u00a0\ufeffé"
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
