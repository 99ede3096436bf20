package mailparse

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestInspectGolden checks the exact JSON `ticketd inspect` prints for
// every sample mail and body against testdata/golden. Run with -update
// after a deliberate change and review the diff.
func TestInspectGolden(t *testing.T) {
	var inputs []string
	for _, pattern := range []string{"testdata/mail/*.eml", "testdata/body/*"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, files...)
	}
	if len(inputs) == 0 {
		t.Fatal("no sample inputs found")
	}
	for _, in := range inputs {
		name := filepath.Base(filepath.Dir(in)) + "-" + filepath.Base(in)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var m *Message
			if strings.Contains(in, "/body/") {
				m = ParseBody(string(raw), strings.HasSuffix(in, ".html"))
			} else {
				m = Parse(raw, Options{})
			}
			var buf bytes.Buffer
			if err := m.Summary().WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			if !utf8.Valid(got) || !json.Valid(got) {
				t.Fatalf("output is not valid UTF-8 JSON: %q", got)
			}
			golden := filepath.Join("testdata", "golden", name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden file (run go test -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("inspect output differs from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func TestSummaryArraysNeverNull(t *testing.T) {
	var buf bytes.Buffer
	if err := (&Message{}).Summary().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte("null")) {
		t.Errorf("empty message summary has null: %s", buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := []string{"subject", "from", "to", "cc", "date", "message_id", "in_reply_to", "references", "text", "reply", "signature", "attachments", "auto", "commands"}
	var keys []string
	for _, k := range want {
		if _, ok := got[k]; ok {
			keys = append(keys, k)
		}
	}
	if diff := cmp.Diff(want, keys); diff != "" || len(got) != len(want) {
		t.Errorf("summary keys mismatch (-want +got):\n%s\n%v", diff, got)
	}
}
