package admin_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestTokensPage: staff make a token on the web, see its secret once, use
// it on /api/v1, and revoke it; nobody revokes another's token, and a
// request without the CSRF token makes none.
func TestTokensPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mod := e.client()
	mod.signIn(e.mod)

	if res := mod.post("/tokens", url.Values{"name": {"   "}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("a token without a name: %d", res.StatusCode)
	}
	res := mod.post("/tokens", url.Values{"name": {"CRM  sync"}})
	if res.StatusCode != http.StatusCreated || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d, Cache-Control %q", res.StatusCode, res.Header.Get("Cache-Control"))
	}
	m := regexp.MustCompile(`<code id="secret">([^<]+)</code>`).FindStringSubmatch(res.body)
	if m == nil {
		t.Fatalf("the page does not show the new secret: %s", res.body)
	}
	secret := m[1]
	if api := e.api(secret, "GET", "/tickets", ""); api.StatusCode != http.StatusOK {
		t.Fatalf("the new token on the API: %d %s", api.StatusCode, api.body)
	}
	list := mod.get("/tokens")
	if strings.Contains(list.body, secret) || !strings.Contains(list.body, "CRM sync") {
		t.Fatal("the list shows the secret again, or not the token's name")
	}
	if n := e.count(`SELECT count(*) FROM api_tokens WHERE user_id = $1 AND name = 'CRM sync'`, e.mod.ID); n != 1 {
		t.Fatalf("%d tokens stored", n)
	}
	var id int64
	if err := e.pool.QueryRow(t.Context(), `SELECT id FROM api_tokens WHERE user_id = $1`, e.mod.ID).Scan(&id); err != nil {
		t.Fatal(err)
	}

	other := e.client()
	other.signIn(e.mod2)
	if res := other.post("/tokens/"+itoa(id)+"/revoke", nil); res.StatusCode != http.StatusNotFound {
		t.Fatalf("another moderator revoking the token: %d", res.StatusCode)
	}
	if res := mod.postRaw("/tokens", url.Values{"name": {"forged"}}, e.srv.URL); res.StatusCode != http.StatusForbidden {
		t.Fatalf("a form without the CSRF token: %d", res.StatusCode)
	}
	if api := e.api(secret, "GET", "/tickets", ""); api.StatusCode != http.StatusOK {
		t.Fatalf("the token stopped working: %d", api.StatusCode)
	}

	if res := mod.post("/tokens/"+itoa(id)+"/revoke", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", res.StatusCode)
	}
	if api := e.api(secret, "GET", "/tickets", ""); api.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a revoked token on the API: %d", api.StatusCode)
	}
	if !strings.Contains(mod.get("/tokens").body, "revoked") {
		t.Error("the list does not show the token revoked")
	}
	if n := e.count(`SELECT count(*) FROM api_tokens WHERE name = 'forged'`); n != 0 {
		t.Errorf("a forged form made %d tokens", n)
	}
}
