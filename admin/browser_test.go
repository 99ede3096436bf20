package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"ticketd/tickets"
)

const chromiumPath = "/usr/bin/chromium"

// screenshotDir is where the browser test leaves pictures of the main
// pages (gitignored), relative to this package.
var screenshotDir = filepath.Join("..", "artifacts", "screenshots")

// browser is one headless Chromium driven over the DevTools protocol.
type browser struct {
	t       *testing.T
	ctx     context.Context
	baseURL string

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Debian's chromium at %s: run `bash scripts/install-chromium.sh` "+
			"(apt-get install -y chromium) as root", chromiumPath)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf), chromedp.WithErrorf(t.Logf))
	b := &browser{t: t, ctx: ctx}
	// The first Run starts the browser; it lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if v := recover(); v != nil {
				t.Errorf("panic reading the console: %v\n%s", v, debug.Stack())
			}
		}()
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		<-done
	})
	return b
}

// run does the steps, failing the test with what was being done.
func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// submit clicks a form's button and waits for the page it leads to.
func (b *browser) submit(what, button string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(button)))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	if res != nil && res.Status >= 400 {
		b.t.Fatalf("%s: the page answered %d", what, res.Status)
	}
}

func (b *browser) open(path string) {
	b.t.Helper()
	b.run("open "+path, chromedp.Navigate(b.base()+path))
}

func (b *browser) base() string { return b.baseURL }

func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(eval[string](b, fmt.Sprintf(`document.querySelector(%q)?.textContent ?? ""`, sel)))
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) signIn(u tickets.User) {
	b.t.Helper()
	b.open("/signin")
	b.run("fill the sign-in form",
		chromedp.SetValue(chromedp.CSS(`input[name=email]`), u.Email),
		chromedp.SetValue(chromedp.CSS(`input[name=password]`), password))
	b.submit("sign in as "+u.Email, `form[action="/signin"] button`)
	if got := eval[string](b, `location.pathname`); !strings.HasPrefix(got, "/tickets") {
		b.t.Fatalf("after signing in as %s the browser is at %s", u.Email, got)
	}
}

func (b *browser) signOut() {
	b.t.Helper()
	b.submit("sign out", `form.signout button`)
}

// TestBrowser walks the main path in headless Chromium: an admin signs in,
// filters, opens a ticket and assigns it; the moderator completes it; the
// requester opens the portal by the signed link of a mail and sees it
// Completed. A mail whose HTML carries script stays inert.
func TestBrowser(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b := newBrowser(t)
	b.baseURL = e.srv.URL

	target := e.ticket("VPN drops every hour", "Since Monday the VPN drops every hour.", e.req, nil, tickets.PriorityHigh)
	e.ticket("Invoice sent twice", "I got the invoice twice.", e.req2, &e.mod2, tickets.PriorityMedium)
	e.ticket("Password reset mail never arrives", "No mail.", e.req2, nil, tickets.PriorityLow)
	evil := e.ticket("Newsletter with tricks", "see the html", e.req, &e.mod, tickets.PriorityLow)
	news, err := e.st.InsertMessage(ctx, tickets.Message{TicketID: evil.ID, Direction: tickets.Inbound,
		MessageID: "evil-1@example.net", FromAddress: e.req.Email, FromName: e.req.Name, TextBody: "plain part",
		HTMLBody: `<h2>Monthly news</h2><p>Read <a id="jslink" href="javascript:window.pwned='link'">this</a> and <a href="https://example.org/news">that</a>.</p>` +
			`<script>window.pwned = 'script'</script>` +
			`<img id="evilimg" src="x" onerror="window.pwned='onerror'">` +
			`<img src="https://tracker.example/pixel.gif" alt="tracking pixel">` +
			`<img id="inline" src="cid:logo@news.example" alt="logo">` +
			`<p style="color:red" onmouseover="window.pwned='hover'">styled</p>`})
	if err != nil {
		t.Fatal(err)
	}
	logo := pngImage(t, 24, 12)
	if _, err := e.st.InsertAttachment(ctx, tickets.Attachment{MessageID: news.ID, Filename: "logo.png", ContentType: "image/png",
		ContentID: "logo@news.example", Inline: true, Size: int64(len(logo)), SHA256: make([]byte, 32), Data: logo}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO ai_decisions (ticket_id, provider, model, input_hash) VALUES ($1, 'rules', '', '\x00')`, target.ID); err != nil {
		t.Fatal(err)
	}
	e.hold(bounce, "bounce", "a delivery failure that names no ticket")

	// The admin signs in and filters to the high-priority, unassigned tickets.
	b.signIn(e.admin)
	b.screenshot("tickets")
	b.run("filter",
		chromedp.SetValue(chromedp.CSS(`select[name=priority]`), "high"),
		chromedp.SetValue(chromedp.CSS(`select[name=assignee]`), "none"))
	b.submit("filter", `form.filters button`)
	rows := eval[[]string](b, `[...document.querySelectorAll('td.subject > a')].map(a => a.textContent)`)
	if strings.Join(rows, "|") != target.Subject {
		t.Fatalf("filtered list shows %q, want only %q", rows, target.Subject)
	}
	b.screenshot("tickets-filtered")

	// Open the ticket and assign it to the moderator.
	b.submit("open the ticket", `td.subject > a`)
	if got := b.text("h1"); !strings.Contains(got, target.Subject) {
		t.Fatalf("ticket page heading %q", got)
	}
	b.run("choose the assignee", chromedp.SetValue(chromedp.CSS(`select[name=assignee_id]`), itoa(e.mod.ID)),
		chromedp.SetValue(chromedp.CSS(`input[name=reason]`), "knows the VPN"))
	b.submit("assign", `form[action$="/assign"] button`)
	if got := b.text("p.flash"); !strings.Contains(got, "Assignee changed from nobody to "+e.mod.Email) {
		t.Fatalf("notice after assigning: %q", got)
	}
	if got := b.text("#assignee"); got != e.mod.Name {
		t.Fatalf("assignee shown: %q", got)
	}
	b.screenshot("ticket")

	// The assignment emitted ticket.assigned; the workflow that mails the
	// moderator is not running here, so the test hands the event to the
	// real notifier as the workflow does, and checks the queued mail.
	var eventID int64
	var data struct {
		TicketID   int64 `json:"ticket_id"`
		AssigneeID int64 `json:"assignee_id"`
	}
	var raw []byte
	if err := e.pool.QueryRow(ctx, `SELECT id, data FROM event_outbox WHERE name = 'ticket.assigned' AND ticket_id = $1`,
		target.ID).Scan(&eventID, &raw); err != nil {
		t.Fatalf("no ticket.assigned event: %v", err)
	}
	if err := json.Unmarshal(raw, &data); err != nil || data.AssigneeID != e.mod.ID {
		t.Fatalf("ticket.assigned data %s: %v", raw, err)
	}
	if err := e.st.InTx(ctx, func(tx *tickets.Store) error {
		return e.notifier.Assignment(ctx, tx, fmt.Sprintf("ticketd-%d", eventID), data.TicketID, data.AssigneeID)
	}); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM mail_outbox WHERE kind = 'assignment' AND ticket_id = $1 AND $2 = ANY(recipients)`,
		target.ID, e.mod.Email); n != 1 {
		t.Fatalf("%d assignment mails to the moderator, want 1", n)
	}

	// The admin's other pages.
	b.open("/quarantine")
	b.screenshot("quarantine")
	b.open("/people")
	b.screenshot("people")
	b.signOut()

	// The moderator signs in, sees the ticket among theirs, and completes it.
	b.signIn(e.mod)
	mine := eval[[]string](b, `[...document.querySelectorAll('td.subject > a')].map(a => a.textContent)`)
	if strings.Join(mine, "|") != target.Subject+"|"+evil.Subject {
		t.Fatalf("the moderator's list: %q", mine)
	}
	b.open("/tickets/" + itoa(target.ID))
	b.run("choose Completed", chromedp.SetValue(chromedp.CSS(`select[name=status]`), "completed"))
	b.submit("complete", `form[action$="/status"] button`)
	if got := b.text("#status"); got != "Completed" {
		t.Fatalf("status shown after completing: %q", got)
	}
	if got, _ := e.st.Ticket(ctx, target.ID); got.Status != tickets.StatusCompleted {
		t.Fatalf("status stored: %s", got.Status)
	}
	if n := e.count(`SELECT count(*) FROM event_outbox WHERE name = 'ticket.completed' AND ticket_id = $1`, target.ID); n != 1 {
		t.Fatalf("%d ticket.completed events", n)
	}

	// The mail's HTML, shown on request, runs nothing of the mail's.
	b.open("/tickets/" + itoa(evil.ID) + "?view=html")
	b.run("wait for the mail", chromedp.WaitVisible(chromedp.CSS(`.mail-html h2`)))
	if got := eval[string](b, `typeof window.pwned`); got != "undefined" {
		t.Fatalf("a script of the mail ran: window.pwned is %q", eval[string](b, `String(window.pwned)`))
	}
	checks := eval[map[string]int](b, `({
		scripts: document.querySelectorAll('.mail-html script').length,
		jsLinks: [...document.querySelectorAll('a[href]')].filter(a => a.href.trim().toLowerCase().startsWith('javascript:')).length,
		handlers: [...document.querySelectorAll('.mail-html *')].filter(el => [...el.attributes].some(a => a.name.startsWith('on'))).length,
		styles: document.querySelectorAll('.mail-html [style]').length,
		remoteImages: [...document.querySelectorAll('.mail-html img')].filter(i => i.hasAttribute('src') && i.id !== 'inline').length,
		pageScripts: document.scripts.length,
	})`)
	for k, v := range checks {
		if v != 0 {
			t.Errorf("the mail's HTML kept %d %s", v, k)
		}
	}
	// Its inline image comes from the mail's own part, on this site.
	b.run("wait for the inline image", chromedp.Poll[chromedp.Void](`document.getElementById('inline').complete`, chromedp.WithPollingTimeout(10*time.Second)))
	if got := eval[int](b, `document.getElementById('inline').naturalWidth`); got != 24 {
		t.Errorf("the inline image shows %d pixels wide, want 24 (src %s)", got, eval[string](b, `document.getElementById('inline').src`))
	}
	b.run("click the mail's first link",
		chromedp.Click(chromedp.CSS(`.mail-html a`)),
		chromedp.Sleep(100*time.Millisecond))
	if got := eval[string](b, `typeof window.pwned`); got != "undefined" {
		t.Fatalf("clicking the mail's link ran script: %q", eval[string](b, `String(window.pwned)`))
	}
	b.screenshot("ticket-mail-html")
	b.signOut()

	// The requester follows the signed link of a notification mail.
	b.open("/t/" + itoa(target.ID) + "?k=" + e.linkToken(e.req, target.ID))
	if got := eval[string](b, `location.pathname`); got != "/portal/tickets/"+itoa(target.ID) {
		t.Fatalf("the signed link led to %s", got)
	}
	if got := b.text("#status"); got != "Completed" {
		t.Fatalf("the portal shows the status %q, want Completed", got)
	}
	b.screenshot("portal-ticket")
	b.open("/portal")
	if got := b.text("#group-completed"); !strings.Contains(got, target.Subject) {
		t.Fatalf("the ticket is not under Completed: %q", got)
	}
	b.screenshot("portal-home")
	// A new request with a screenshot attached, as the requester's
	// browser sends the form.
	shot := filepath.Join(t.TempDir(), "printer.png")
	if err := os.WriteFile(shot, pngImage(t, 8, 8), 0o644); err != nil {
		t.Fatal(err)
	}
	b.open("/portal/new")
	b.screenshot("portal-new")
	b.run("fill the new request",
		chromedp.SetValue(chromedp.CSS(`input[name=subject]`), "Printer shows an error light"),
		chromedp.SetValue(chromedp.CSS(`textarea[name=body]`), "See the photo."),
		chromedp.SetUploadFiles(chromedp.CSS(`input[name=files]`), []string{shot}))
	b.submit("send the new request", `form[action="/portal/new"] button`)
	if got := b.text(".attachments"); !strings.Contains(got, "printer.png") {
		t.Fatalf("the new ticket does not list the attached file: %q (at %s)", got, eval[string](b, `location.pathname`))
	}
	b.signOut()
	b.open("/portal/signin")
	b.screenshot("portal-signin")
	b.open("/signin")
	b.screenshot("signin")

	// Our own pages broke no rule of their Content-Security-Policy and
	// threw nothing.
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.console {
		if m.Type == chromedp.ConsoleException || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("console: %s", m)
		}
	}
}

// pngImage encodes a w×h PNG.
func pngImage(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
