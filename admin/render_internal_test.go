package admin

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// TestTemplatesRequired: a page template missing from the embedded files,
// or one that does not parse, fails construction instead of the first
// request for it.
func TestTemplatesRequired(t *testing.T) {
	full := fstest.MapFS{}
	err := fs.WalkDir(templateFiles, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFiles, path)
		full[path] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseTemplates(full); err != nil {
		t.Fatalf("the embedded templates: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(fstest.MapFS)
		want   string
	}{
		{"page missing", func(m fstest.MapFS) { delete(m, "templates/ticket.html") }, "templates/ticket.html"},
		{"layout missing", func(m fstest.MapFS) { delete(m, "templates/layout.html") }, "layout"},
		{"broken page", func(m fstest.MapFS) {
			m["templates/people.html"] = &fstest.MapFile{Data: []byte(`{{define "content"}}{{.Nope`)}
		}, "people"},
		{"page without content", func(m fstest.MapFS) {
			m["templates/signin.html"] = &fstest.MapFile{Data: []byte(`{{define "title"}}x{{end}}`)}
		}, "content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := fstest.MapFS{}
			for k, v := range full {
				m[k] = v
			}
			tc.change(m)
			_, err := parseTemplates(m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parseTemplates: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
