package admin_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"ticketd/inbound/mailparse"
)

// file is a file a test attaches to a portal form.
type file struct {
	name, contentType string
	data              []byte
}

// postFiles submits a multipart form with files, as a browser does.
func (c *client) postFiles(path string, fields map[string]string, files []file) response {
	c.e.t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	fields["csrf_token"] = c.token()
	for k, v := range fields {
		w.WriteField(k, v)
	}
	for _, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="files"; filename="`+f.name+`"`)
		h.Set("Content-Type", f.contentType)
		p, _ := w.CreatePart(h)
		p.Write(f.data)
	}
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, c.e.srv.URL+path, &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Origin", c.e.srv.URL)
	return c.do(req)
}

// TestPortalUploads: files attached on the portal reach the ticket as the
// attachments of the mail the portal writes, on a new request and on a
// reply; too many or too large are refused before anything is delivered.
func TestPortalUploads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Printer", "It jams.", e.req, nil, "")
	c := e.client()
	c.signInLink(e.req, tk.ID)

	shot := []byte("\x89PNG\r\n\x1a\nnot really an image, but bytes to keep")
	log := []byte(strings.Repeat("2026-11-26 error: paper jam in tray 2\n", 1000))
	res := c.postFiles("/portal/new", map[string]string{"subject": "Scanner too", "body": "See the files.", "nonce": "n1"},
		[]file{{`C:\Users\rita\screen shot.png`, "image/png", shot}, {"résumé.log", "text/plain; charset=utf-8", log}})
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/portal/tickets/") {
		t.Fatalf("new request: %d %s %s", res.StatusCode, res.Header.Get("Location"), res.body)
	}
	newID := strings.TrimPrefix(res.Header.Get("Location"), "/portal/tickets/")
	type att struct {
		name, ctype string
		data        []byte
	}
	stored := func(ticket string, kind string) []att {
		t.Helper()
		rows, err := e.pool.Query(t.Context(), `SELECT a.filename, a.content_type, a.data FROM attachments a
			JOIN messages m ON m.id = a.message_id WHERE m.ticket_id = $1 AND m.kind = $2 ORDER BY a.id`, ticket, kind)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []att
		for rows.Next() {
			var a att
			if err := rows.Scan(&a.name, &a.ctype, &a.data); err != nil {
				t.Fatal(err)
			}
			out = append(out, a)
		}
		return out
	}
	got := stored(newID, "opening")
	if len(got) != 2 || got[0].name != "screen shot.png" || got[0].ctype != "image/png" || !bytes.Equal(got[0].data, shot) ||
		got[1].name != "résumé.log" || got[1].ctype != "text/plain" || !bytes.Equal(got[1].data, log) {
		t.Fatalf("attachments of the new ticket: %+v", got)
	}
	page := c.get("/portal/tickets/" + newID)
	if !strings.Contains(page.body, "screen shot.png") || !strings.Contains(page.body, "résumé.log") {
		t.Error("the portal does not list the files")
	}

	res = c.postFiles("/portal/tickets/"+itoa(tk.ID)+"/reply", map[string]string{"body": "Another one.", "nonce": "n2"},
		[]file{{"jam.txt", "text/plain", []byte("tray 2")}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("reply: %d %s", res.StatusCode, res.body)
	}
	if got := stored(itoa(tk.ID), "reply"); len(got) != 1 || got[0].name != "jam.txt" || string(got[0].data) != "tray 2" {
		t.Fatalf("attachments of the reply: %+v", got)
	}

	before := e.count(`SELECT count(*) FROM raw_messages`)
	many := make([]file, 11)
	for i := range many {
		many[i] = file{"f.txt", "text/plain", []byte("x")}
	}
	res = c.postFiles("/portal/new", map[string]string{"subject": "Many", "body": "Files.", "nonce": "n3"}, many)
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(res.body, "at most 10 files") {
		t.Fatalf("11 files: %d", res.StatusCode)
	}
	res = c.postFiles("/portal/new", map[string]string{"subject": "Big", "body": "File.", "nonce": "n4"},
		[]file{{"big.bin", "application/octet-stream", make([]byte, 17<<20)}})
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("17 MB: %d", res.StatusCode)
	}
	if n := e.count(`SELECT count(*) FROM raw_messages`); n != before {
		t.Fatalf("refused forms delivered %d mails", n-before)
	}
}

// TestStaffReplyWithFiles: files a moderator attaches to a reply on the web
// stay on the ticket and go to the requester with the reply.
func TestStaffReplyWithFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Printer", "It jams.", e.req, &e.mod, "")
	c := e.client()
	c.signIn(e.mod)
	res := c.postFiles("/tickets/"+itoa(tk.ID)+"/reply", map[string]string{"body": "Install this driver.", "internal": "0", "nonce": "r1"},
		[]file{{"driver.zip", "application/zip", []byte("PK\x03\x04 zip bytes")}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("reply: %d %s", res.StatusCode, res.body)
	}
	if n := e.count(`SELECT count(*) FROM attachments a JOIN messages m ON m.id = a.message_id
		WHERE m.ticket_id = $1 AND m.direction = 'outbound' AND a.filename = 'driver.zip'`, tk.ID); n != 1 {
		t.Fatalf("%d stored files on the reply", n)
	}
	var data []byte
	if err := e.pool.QueryRow(t.Context(), `SELECT data FROM mail_outbox WHERE ticket_id = $1 AND kind = 'reply'`, tk.ID).Scan(&data); err != nil {
		t.Fatal(err)
	}
	m := mailparse.Parse(data, mailparse.Options{})
	if !strings.Contains(m.Text, "Install this driver.") || len(m.Attachments) != 1 || m.Attachments[0].Filename != "driver.zip" ||
		string(m.Attachments[0].Data) != "PK\x03\x04 zip bytes" {
		t.Fatalf("the requester's mail: %q with %+v", m.Text, m.Attachments)
	}
}

// TestAPIReplyWithFiles: files sent in base64 with a reply through
// /api/v1 are stored on it, for staff and requesters alike, under the
// portal's limits.
func TestAPIReplyWithFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Printer", "It jams.", e.req, &e.mod, "")
	body := func(text string, files ...file) string {
		var fs []map[string]any
		for _, f := range files {
			fs = append(fs, map[string]any{"name": f.name, "content_type": f.contentType, "data": f.data})
		}
		b, err := json.Marshal(map[string]any{"body": text, "files": fs})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	path := "/tickets/" + itoa(tk.ID) + "/reply"
	if res := e.api(e.token(e.mod), "POST", path, body("The driver.", file{"driver.zip", "application/zip", []byte("PK zip")})); res.StatusCode != http.StatusCreated {
		t.Fatalf("staff reply: %d %s", res.StatusCode, res.body)
	}
	if res := e.api(e.token(e.req), "POST", path, body("My log.", file{"../../etc/log.txt", "text/plain; charset=utf-8", []byte("jams")})); res.StatusCode != http.StatusCreated {
		t.Fatalf("requester reply: %d %s", res.StatusCode, res.body)
	}
	rows, err := e.pool.Query(t.Context(), `SELECT m.direction, a.filename, a.content_type, a.data FROM attachments a
		JOIN messages m ON m.id = a.message_id WHERE m.ticket_id = $1 ORDER BY a.id`, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var dir, name, ct string
		var data []byte
		if err := rows.Scan(&dir, &name, &ct, &data); err != nil {
			t.Fatal(err)
		}
		got = append(got, dir+" "+name+" "+ct+" "+string(data))
	}
	if want := []string{"outbound driver.zip application/zip PK zip", "inbound log.txt text/plain jams"}; !slices.Equal(got, want) {
		t.Fatalf("stored files %q, want %q", got, want)
	}
	many := make([]file, 11)
	for i := range many {
		many[i] = file{"f.txt", "text/plain", []byte("x")}
	}
	if res := e.api(e.token(e.mod), "POST", path, body("Many.", many...)); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("11 files: %d %s", res.StatusCode, res.body)
	}
}
