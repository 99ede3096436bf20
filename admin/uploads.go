package admin

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"
	"ticketd/tickets"
	"unicode"
)

// Files a requester attaches on the portal travel in the mail the portal
// writes for them, base64-encoded: their total stays well under the 25 MB
// that intake takes by default.
const (
	maxUploads     = 10
	maxUploadBytes = 15 << 20
	// maxFormBytes bounds every request body of the pages: the uploads and
	// the form's text.
	maxFormBytes = maxUploadBytes + 1<<20
)

// limitBody answers 413 to a form larger than maxFormBytes before anything
// reads it, and stops reading one that grows past it.
func (s *server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxFormBytes {
			s.errorPage(w, r, &userError{status: http.StatusRequestEntityTooLarge, code: "too_large",
				msg: fmt.Sprintf("That is too much to send at once: files may add up to %d MB.", maxUploadBytes>>20)})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		next.ServeHTTP(w, r)
	})
}

// formUploads reads the files of a portal form's "files" field.
func formUploads(r *http.Request) ([]upload, error) {
	if r.MultipartForm == nil {
		return nil, nil
	}
	headers := r.MultipartForm.File["files"]
	var out []upload
	total := 0
	for _, fh := range headers {
		if fh.Filename == "" && fh.Size == 0 {
			continue // the file field, left empty
		}
		if len(out) == maxUploads {
			return nil, invalid("Attach at most %d files.", maxUploads)
		}
		total += int(fh.Size)
		if total > maxUploadBytes {
			return nil, invalid("The files may add up to %d MB; send larger ones as a link.", maxUploadBytes>>20)
		}
		f, err := fh.Open()
		if err != nil {
			return nil, fmt.Errorf("open upload %q: %w", fh.Filename, err)
		}
		data, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read upload %q: %w", fh.Filename, err)
		}
		out = append(out, upload{name: uploadName(fh.Filename), contentType: uploadType(fh.Header.Get("Content-Type")), data: data})
	}
	return out, nil
}

// uploadName is a file's name without any directory, control characters or
// excess length; "file" when nothing is left.
func uploadName(name string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, tickets.PlainName(name))
	if r := []rune(name); len(r) > 200 {
		name = string(r[:200])
	}
	if name == "" || name == "." || name == ".." || name == "/" {
		return "file"
	}
	return name
}

// uploadType is the media type the browser gave a file, without
// parameters; application/octet-stream when it gave none or nonsense.
func uploadType(ct string) string {
	t, _, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(t, "/") {
		return "application/octet-stream"
	}
	return t
}
