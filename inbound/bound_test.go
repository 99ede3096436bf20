package inbound

import (
	"strings"
	"testing"
)

// TestBoundAlready: the shortcut of bound agrees with the long way.
func TestBoundAlready(t *testing.T) {
	slow := func(s string) string {
		s = strings.Join(strings.Fields(clean(s)), " ")
		if r := []rune(s); len(r) > maxTraceValue {
			return string(r[:maxTraceValue-1]) + "…"
		}
		return s
	}
	for _, s := range []string{"", " ", "a", "a b", "a  b", " a", "a ", "a\tb", "a\nb", "x\x00y", "caf\xe9", "café",
		"a\u00a0b", "<ann@example.com>", strings.Repeat("x", maxTraceValue), strings.Repeat("x", maxTraceValue+1),
		strings.Repeat("ab ", 200), "~!@#$%^&*()_+{}|:\"<>?", "\x7f"} {
		if got, want := bound(s), slow(s); got != want {
			t.Errorf("bound(%q) = %q, want %q", s, got, want)
		}
	}
}
