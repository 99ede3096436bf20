package admin_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"ticketd/tickets"
	"ticketd/workflows/triage"
)

// TestSkillsPage: an admin gives a skill of the desk its own words on the
// skills page, and triage then finds the skill in tickets that use them
// without naming it. Nobody else may, and a bad definition comes back with
// what was typed and why.
func TestSkillsPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	e.user("sap@example.com", "Sam Sap", tickets.RoleModerator, []string{"sap"})
	in := triage.Input{Subject: "Cannot book", Body: "The posting period 03 is closed for cost centre 4711; we cannot book anything."}
	reading := func() []string {
		desk, err := triage.LoadDesk(ctx, e.st)
		if err != nil {
			t.Fatal(err)
		}
		in := desk.Input(1, in.Subject, in.Body)
		res, _, err := triage.NewRules(triage.RulesOptions{}).Analyze(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return res.Skills
	}
	if got := reading(); slices.Contains(got, "sap") {
		t.Fatalf("before the skill has words, the ticket needs %v: the test would prove nothing", got)
	}

	adm := e.client()
	adm.signIn(e.admin)
	page := adm.get("/skills")
	if page.StatusCode != http.StatusOK {
		t.Fatalf("skills page: %d", page.StatusCode)
	}
	for _, want := range []string{"<strong>billing</strong>", "<strong>sap</strong>", "Sam Sap", "ticketd knows words for it too"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the skills page lacks %q", want)
		}
	}
	res := adm.post("/skills", url.Values{"name": {"SAP"}, "description": {"Our ERP: bookings, cost centres"},
		"terms": {"posting period\nCost  Centre, Buchungsperiode\n\n"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: %d %s", res.StatusCode, errorText(res.body))
	}
	defs, err := e.st.SkillDefinitions(ctx)
	if err != nil || len(defs) != 1 || defs[0].Name != "sap" || !slices.Equal(defs[0].Terms, []string{"posting period", "cost centre", "buchungsperiode"}) {
		t.Fatalf("definitions %+v, %v", defs, err)
	}
	if got := reading(); !slices.Equal(got, []string{"sap"}) {
		t.Errorf("with the desk's words the ticket needs %v, want [sap]", got)
	}
	if page := adm.get("/skills"); !strings.Contains(page.body, "Our ERP: bookings, cost centres") || !strings.Contains(page.body, "posting period\ncost centre") {
		t.Errorf("the page does not show the definition")
	}

	for _, tc := range []struct {
		name        string
		form        url.Values
		status      int
		problem     string
		keepsInForm string
	}{
		{"not a skill name", url.Values{"name": {"two words!"}, "terms": {"x"}}, 422, "skill is a word", "two words!"},
		{"a term too long", url.Values{"name": {"sap"}, "terms": {strings.Repeat("x", 61)}}, 422, "longer than 60", strings.Repeat("x", 61)},
		{"a term without letters", url.Values{"name": {"sap"}, "terms": {"***"}}, 422, "has no letter or digit", "***"},
	} {
		res := adm.post("/skills", tc.form)
		if res.StatusCode != tc.status || !strings.Contains(html.UnescapeString(res.body), tc.problem) || !strings.Contains(html.UnescapeString(res.body), tc.keepsInForm) {
			t.Errorf("%s: %d, %s", tc.name, res.StatusCode, errorText(res.body))
		}
	}

	// Moderators and requesters may not change what triage reads.
	for _, u := range []tickets.User{e.mod, e.req} {
		c := e.client()
		if u.Role.IsStaff() {
			c.signIn(u)
		} else {
			c.signInLink(u, e.ticket("x", "y", u, nil, "").ID)
		}
		if res := c.post("/skills", url.Values{"name": {"sap"}, "terms": {"anything"}}); res.StatusCode == http.StatusSeeOther {
			t.Errorf("%s changed a skill's words", u.Email)
		}
		if res := c.get("/skills"); res.StatusCode == http.StatusOK {
			t.Errorf("%s sees the skills page", u.Email)
		}
	}
	// A form posted from another site is refused.
	if res := adm.postRaw("/skills", url.Values{"name": {"sap"}, "terms": {"forged"}}, "https://evil.example"); res.StatusCode == http.StatusSeeOther {
		t.Error("a cross-site post changed a skill")
	}
	if defs, _ := e.st.SkillDefinitions(ctx); len(defs) != 1 || slices.Contains(defs[0].Terms, "anything") || slices.Contains(defs[0].Terms, "forged") {
		t.Errorf("definitions changed: %+v", defs)
	}

	if res := adm.post("/skills/delete", url.Values{"name": {"sap"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", res.StatusCode)
	}
	if got := reading(); slices.Contains(got, "sap") {
		t.Errorf("after the definition is gone the ticket still needs %v", got)
	}
}
