package mailparse

import (
	"strings"
	"testing"
	"unsafe"
)

// TestLargeTextShared: a large UTF-8 text part's text is the mail's own
// bytes, not a copy; a small one is copied, so it does not keep the mail
// alive.
func TestLargeTextShared(t *testing.T) {
	line := "2026-11-26 17:00:01 worker 7: job 4411 failed, retrying in 30 s\n"
	big := strings.Repeat(line, (2<<20)/len(line))
	inside := func(s string, raw []byte) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		start := uintptr(unsafe.Pointer(unsafe.SliceData(raw)))
		return p >= start && p < start+uintptr(len(raw))
	}
	for _, tc := range []struct {
		name   string
		body   string
		shared bool
	}{
		{"large", big, true},
		{"small", "Hello,\nthe printer is on fire.\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte("From: a@example.com\nSubject: log\nContent-Type: text/plain; charset=utf-8\n\n" + tc.body)
			orig := string(raw)
			m := Parse(raw, Options{})
			if want := strings.TrimRight(tc.body, "\n"); m.Text != want {
				t.Fatalf("text of %d bytes, want %d", len(m.Text), len(want))
			}
			if got := inside(m.Text, raw); got != tc.shared {
				t.Errorf("text shares the mail's bytes: %v, want %v", got, tc.shared)
			}
			if string(raw) != orig {
				t.Error("Parse changed the mail's bytes")
			}
		})
	}
	// Latin-1 is decoded, never shared.
	raw := []byte("From: a@example.com\nContent-Type: text/plain; charset=iso-8859-1\n\n" + strings.Repeat("caf\xe9 ", 300000))
	if m := Parse(raw, Options{}); inside(m.Text, raw) || !strings.HasPrefix(m.Text, "café café") {
		t.Errorf("Latin-1 text shared or misread: %q", m.Text[:20])
	}
}
