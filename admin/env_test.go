package admin_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/admin"
	"ticketd/inbound"
	"ticketd/outbound"
	"ticketd/pgtest"
	"ticketd/signing"
	"ticketd/testlog"
	"ticketd/tickets"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const support = "support@example.com"

// env is a running web on a fresh database, with the real intake and the
// real notifier behind it.
type env struct {
	t        testing.TB
	pool     *pgxpool.Pool
	st       *tickets.Store
	keys     *signing.Keys
	srv      *httptest.Server
	notifier *outbound.Notifier
	intake   *inbound.Intake

	admin, mod, mod2, req, req2 tickets.User
}

const password = "correct horse battery"

func newEnv(t testing.TB, configure ...func(*admin.Options)) *env {
	t.Helper()
	pool := pgtest.New(t)
	e := &env{t: t, pool: pool, st: tickets.NewStore(pool)}
	var err error
	e.keys, err = signing.NewKeys("a test secret that is long enough")
	if err != nil {
		t.Fatal(err)
	}
	log := testlog.New(t)
	e.srv = httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(e.srv.Close)
	e.notifier = outbound.NewNotifier(outbound.NotifierOptions{SupportAddress: support, Keys: e.keys,
		BaseURL: e.srv.URL, TicketLink: admin.TicketLink(e.srv.URL), Logger: log})
	o := admin.Options{Pool: pool, Logger: log, Notifier: e.notifier, Keys: e.keys,
		BaseURL: e.srv.URL, SupportAddress: support}
	o.Deliver = func(ctx context.Context, raw []byte, src inbound.Source) (inbound.Result, error) {
		return e.intake.Deliver(ctx, raw, src)
	}
	for _, c := range configure {
		c(&o)
	}
	// Intake follows the web's settings, as main wires them. Mail here
	// is not checked at an MX: what the sender checks require is
	// inbound's and e2e's to test.
	e.intake = inbound.New(inbound.Options{Pool: pool, Logger: log, SupportAddress: support, Keys: e.keys,
		Notifier: e.notifier, ModeratorsSeeUnassigned: o.ModeratorsSeeUnassigned, AllowUnauthenticatedCommands: true})
	h, err := admin.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Config.Handler = h

	e.admin = e.user("admin@example.com", "Ada Admin", tickets.RoleAdmin, nil)
	e.mod = e.user("mod@example.com", "Mo Derator", tickets.RoleModerator, []string{"billing", "postgres"})
	e.mod2 = e.user("mod2@example.com", "Other Mod", tickets.RoleModerator, []string{"networking"})
	e.req = e.user("req@example.com", "Rita Requester", tickets.RoleUser, nil)
	e.req2 = e.user("req2@example.com", "Someone Else", tickets.RoleUser, nil)
	return e
}

var hashOnce struct {
	sync.Once
	hash string
}

func (e *env) user(email, name string, role tickets.Role, skills []string) tickets.User {
	e.t.Helper()
	hashOnce.Do(func() {
		h, err := admin.HashPassword(password)
		if err != nil {
			panic(err)
		}
		hashOnce.hash = h
	})
	h := hashOnce.hash
	u, err := e.st.CreateUser(context.Background(), tickets.NewUser{Email: email, Name: name, Role: role,
		Skills: skills, PasswordHash: &h})
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// ticket opens a ticket for requester with an opening message, and
// assigns it when assignee is not nil.
func (e *env) ticket(subject, body string, requester tickets.User, assignee *tickets.User, prio tickets.Priority) tickets.Ticket {
	e.t.Helper()
	ctx := context.Background()
	var t tickets.Ticket
	err := e.st.InTx(ctx, func(tx *tickets.Store) error {
		var err error
		t, err = tx.CreateTicket(ctx, tickets.NewTicket{Subject: subject, Description: body, RequesterID: requester.ID})
		if err != nil {
			return err
		}
		if _, err := tx.InsertMessage(ctx, tickets.Message{TicketID: t.ID, Direction: tickets.Inbound,
			Kind: tickets.KindOpening, MessageID: "open-" + strings.ReplaceAll(strings.ToLower(subject), " ", "-") + "@example.net",
			FromAddress: requester.Email, FromName: requester.Name, Subject: subject, TextBody: body, ReplyText: body,
			ThreadRule: "new"}); err != nil {
			return err
		}
		if prio != "" {
			if _, err := tx.SetPriority(ctx, t.ID, prio, tickets.Actor{Channel: tickets.ChannelSystem}); err != nil {
				return err
			}
		}
		if assignee != nil {
			if _, err := tx.Assign(ctx, t.ID, assignee.ID, "test", tickets.Actor{Channel: tickets.ChannelSystem}); err != nil {
				return err
			}
		}
		t, err = tx.Ticket(ctx, t.ID)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return t
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// client is one browser: its own cookies, no automatic redirects, and the
// Origin header a browser sends on a form post.
type client struct {
	e    *env
	http *http.Client
	jar  *cookiejar.Jar
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{e: e, jar: jar, http: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type response struct {
	*http.Response
	body string
}

func (c *client) do(req *http.Request) response {
	c.e.t.Helper()
	res, err := c.http.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{Response: res, body: string(b)}
}

func (c *client) get(path string) response {
	c.e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.e.srv.URL+path, nil)
	return c.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// token returns a CSRF token for this browser's cookie, read from a page.
func (c *client) token() string {
	c.e.t.Helper()
	res := c.get("/portal/signin")
	m := csrfRE.FindStringSubmatch(res.body)
	if m == nil {
		c.e.t.Fatalf("no csrf token in /portal/signin: %s", res.body)
	}
	return html.UnescapeString(m[1])
}

// post submits a form as a browser would, with the CSRF token.
func (c *client) post(path string, form url.Values) response {
	c.e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if !form.Has("csrf_token") {
		form.Set("csrf_token", c.token())
	}
	return c.postRaw(path, form, c.e.srv.URL)
}

// postRaw submits a form as is, from the given origin.
func (c *client) postRaw(path string, form url.Values, origin string) response {
	c.e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return c.do(req)
}

func (c *client) cookie(name string) string {
	u, _ := url.Parse(c.e.srv.URL)
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// signIn signs a staff member in with their password.
func (c *client) signIn(u tickets.User) {
	c.e.t.Helper()
	res := c.post("/signin", url.Values{"email": {u.Email}, "password": {password}})
	if res.StatusCode != http.StatusSeeOther {
		c.e.t.Fatalf("sign in as %s: %d %s", u.Email, res.StatusCode, res.body)
	}
}

// signInLink signs a requester in by the signed link of a notification
// mail for that ticket.
func (c *client) signInLink(u tickets.User, ticketID int64) {
	c.e.t.Helper()
	res := c.get(admin.TicketLink("")(ticketID, c.e.linkToken(u, ticketID)))
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/portal/tickets/") {
		c.e.t.Fatalf("signed link for %s: %d %s %s", u.Email, res.StatusCode, res.Header.Get("Location"), res.body)
	}
}

func (e *env) linkToken(u tickets.User, ticketID int64) string {
	return e.keys.Sign(signing.Claims{Purpose: signing.PurposeLink, TicketID: ticketID, UserID: u.ID,
		Expires: time.Now().Add(time.Hour)})
}

// api calls /api/v1 with a bearer secret.
func (e *env) api(secret, method, path, body string, header ...string) response {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.srv.URL+"/api/v1"+path, r)
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{Response: res, body: string(b)}
}

func (e *env) token(u tickets.User) string {
	e.t.Helper()
	secret, err := e.st.CreateAPIToken(context.Background(), u.ID, "test")
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
