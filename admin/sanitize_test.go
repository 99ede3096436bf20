package admin_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"ticketd/admin"
	"ticketd/inbound"
	"ticketd/tickets"
)

func TestSanitizer(t *testing.T) {
	t.Parallel()
	s := admin.NewSanitizer()
	for _, tc := range []struct {
		name    string
		in      string
		remote  bool
		absent  []string
		present []string
	}{
		{"script element", `<p>hi</p><script>window.pwned=1</script>`, false, []string{"<script", "pwned"}, []string{"<p>hi</p>"}},
		{"event handler", `<img src="x" onerror="window.pwned=1"><b onclick="x()">b</b>`, false, []string{"onerror", "onclick", "pwned"}, []string{"<b>b</b>"}},
		{"javascript link", `<a href="javascript:alert(1)">click</a>`, false, []string{"javascript:", "href"}, []string{"click"}},
		{"javascript link, obfuscated", `<a href="jav&#x09;ascript:alert(1)">x</a><a href=" JaVaScRiPt:alert(1)">y</a>`, false, []string{"ascript:", "href"}, nil},
		{"data html link", `<a href="data:text/html,<script>alert(1)</script>">x</a>`, false, []string{"data:text/html", "<script"}, nil},
		{"styles and frames", `<style>body{display:none}</style><iframe src="https://evil.example"></iframe><p style="position:fixed">x</p>`, false,
			[]string{"<style", "<iframe", "style=", "evil.example"}, []string{"<p>x</p>"}},
		{"forms and meta", `<form action="https://evil.example"><input name="password"></form><meta http-equiv="refresh" content="0;url=https://evil.example">`, false,
			[]string{"<form", "<input", "<meta", "evil.example"}, nil},
		{"svg with script", `<svg onload="alert(1)"><script>alert(2)</script></svg>`, false, []string{"<svg", "onload", "alert"}, nil},
		{"remote image blocked", `<img src="https://tracker.example/pixel.gif" alt="logo">`, false, []string{"tracker.example", "src="}, []string{`alt="logo"`}},
		{"remote image on request", `<img src="https://tracker.example/pixel.gif" alt="logo">`, true, nil, []string{`src="https://tracker.example/pixel.gif"`}},
		{"relative image never", `<img src="/signout" alt="x">`, true, []string{"/signout"}, nil},
		{"inline data image kept", `<img src="data:image/png;base64,iVBORw0KGgo=" alt="x">`, false, nil, []string{"data:image/png;base64"}},
		{"links lose the referrer", `<a href="https://example.org/help">help</a>`, false, nil,
			[]string{`href="https://example.org/help"`, "noreferrer", "nofollow", `target="_blank"`}},
		{"inline part shown", `<img src="cid:chart.png@01DA" alt="chart">`, false, []string{"cid:"},
			[]string{`src="/tickets/1/attachments/7"`, `alt="chart"`}},
		{"inline part, URL-encoded", `<img src="cid:part1%2E0609@example.com">`, false, []string{"cid:"},
			[]string{`src="/tickets/1/attachments/8?a=1&amp;b=2"`}},
		{"unknown part dropped", `<img src="cid:missing@01DA" alt="gone">`, false, []string{"cid:", "src="}, []string{`alt="gone"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parts := map[string]string{"chart.png@01DA": "/tickets/1/attachments/7", "part1.0609@example.com": "/tickets/1/attachments/8?a=1&b=2"}
			out := strings.ToLower(string(s.HTML(tc.in, tc.remote, func(cid string) string { return parts[cid] })))
			for _, a := range tc.absent {
				if strings.Contains(out, strings.ToLower(a)) {
					t.Errorf("output keeps %q: %s", a, out)
				}
			}
			for _, p := range tc.present {
				if !strings.Contains(out, strings.ToLower(p)) {
					t.Errorf("output lacks %q: %s", p, out)
				}
			}
		})
	}
}

// TestMailHTMLOnPages: plain text is the default view; the HTML view is
// sanitised, and remote images load only when asked for, with a CSP that
// allows them then and only then.
func TestMailHTMLOnPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tk := e.ticket("Newsletter", "plain words", e.req, &e.mod, "")
	if _, err := e.st.InsertMessage(ctx, tickets.Message{TicketID: tk.ID, Direction: tickets.Inbound, MessageID: "html-1@example.net",
		FromAddress: e.req.Email, TextBody: "the plain text part",
		HTMLBody: `<p>the <b>html</b> part</p><script>window.pwned=1</script><img src="https://tracker.example/p.gif" onerror="window.pwned=2"><a href="javascript:alert(1)">x</a>`}); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.signIn(e.mod)
	base := "/tickets/" + itoa(tk.ID)
	for _, tc := range []struct {
		name    string
		query   string
		present []string
		absent  []string
		csp     string
	}{
		{"default is text", "", []string{"the plain text part"}, []string{"<b>html</b>", "tracker.example/p.gif"}, "img-src 'self' data:;"},
		{"html view", "?view=html", []string{"<b>html</b>"}, []string{"window.pwned", "tracker.example/p.gif", "javascript:", "onerror"}, "img-src 'self' data:;"},
		{"html with images", "?view=html&images=1", []string{`src="https://tracker.example/p.gif"`}, []string{"window.pwned", "onerror", "javascript:"}, "img-src 'self' data: https: http:;"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := c.get(base + tc.query)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			for _, p := range tc.present {
				if !strings.Contains(res.body, p) {
					t.Errorf("page lacks %q", p)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(res.body, a) {
					t.Errorf("page has %q", a)
				}
			}
			if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, tc.csp) {
				t.Errorf("CSP %q lacks %q", csp, tc.csp)
			}
		})
	}
}

// TestInlineImagesOnPages: an HTML mail's inline image (multipart/related,
// cid: URL) shows on the staff page and in the API from its kept attachment,
// which serves the image's bytes.
func TestInlineImagesOnPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	raw := "From: Rita Requester <req@example.com>\r\nTo: " + support + "\r\nSubject: Chart is wrong\r\n" +
		"Message-ID: <inline-1@example.com>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/related; boundary=\"rel\"\r\n\r\n" +
		"--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		"<p>See the chart:</p><img src=\"cid:chart.png@01DA\" alt=\"chart\"><img src=\"cid:nowhere@01DA\" alt=\"gone\">\r\n" +
		"--rel\r\nContent-Type: image/png; name=\"chart.png\"\r\nContent-ID: <chart.png@01DA>\r\n" +
		"Content-Disposition: inline; filename=\"chart.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(png) + "\r\n--rel--\r\n"
	res, err := e.intake.Deliver(ctx, []byte(raw), inbound.Source{Kind: "smtp", MailFrom: e.req.Email, RcptTo: []string{support}})
	if err != nil {
		t.Fatal(err)
	}
	var aid int64
	if err := e.pool.QueryRow(ctx, `SELECT id FROM attachments WHERE message_id = $1 AND content_id = 'chart.png@01DA'`, res.MessageID).Scan(&aid); err != nil {
		t.Fatal(err)
	}
	att := "/tickets/" + itoa(res.TicketID) + "/attachments/" + itoa(aid)

	c := e.client()
	c.signIn(e.admin)
	page := c.get("/tickets/" + itoa(res.TicketID) + "?view=html")
	if page.StatusCode != http.StatusOK {
		t.Fatalf("ticket page: %d", page.StatusCode)
	}
	if want := `<img src="` + att + `" alt="chart"`; !strings.Contains(page.body, want) {
		t.Errorf("page lacks %s", want)
	}
	if strings.Contains(page.body, "cid:") || !strings.Contains(page.body, `<img alt="gone"`) {
		t.Error("an image of no kept part keeps its cid: address")
	}
	// The text view lists the image with the files, to download.
	text := c.get("/tickets/" + itoa(res.TicketID))
	if want := `<a href="` + att + `">chart.png</a> <span class="muted small">image/png, `; !strings.Contains(text.body, want) ||
		!strings.Contains(text.body, "shown in the message</span>") {
		t.Errorf("text view does not list the inline image as an inline attachment (want %s)", want)
	}
	img := c.get(att)
	if img.StatusCode != http.StatusOK || img.Header.Get("Content-Type") != "image/png" || img.body != string(png) {
		t.Errorf("inline image: %d %q, %d bytes", img.StatusCode, img.Header.Get("Content-Type"), len(img.body))
	}

	api := e.api(e.token(e.admin), "GET", "/tickets/"+itoa(res.TicketID), "")
	if api.StatusCode != http.StatusOK || !strings.Contains(api.body, `src=\"`+e.srv.URL+att+`\"`) {
		t.Errorf("API ticket: %d, html without the image's address %s: %s", api.StatusCode, e.srv.URL+att, api.body)
	}
}
