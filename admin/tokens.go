package admin

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"ticketd/tickets"
)

// TokensPage lists the viewer's bearer tokens for /api/v1 and makes new
// ones; Secret is a new token's secret, shown once.
type TokensPage struct {
	Page
	Tokens  []tickets.APIToken
	Secret  string
	Created string // the new token's name
	Error   string
}

// maxTokenName bounds what a token's name may hold.
const maxTokenName = 100

func (s *server) renderTokens(w http.ResponseWriter, r *http.Request, status int, data TokensPage) {
	v := viewerFrom(r.Context())
	toks, err := s.st.APITokens(r.Context(), v.User.ID)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	data.Page, data.Tokens = s.page(r, "API tokens", "tokens"), toks
	w.Header().Set("Cache-Control", "no-store") // the page may show a secret
	s.render(w, r, status, "tokens", data)
}

func (s *server) tokenList(w http.ResponseWriter, r *http.Request) {
	s.renderTokens(w, r, http.StatusOK, TokensPage{})
}

// tokenCreate makes a token that acts as the viewer, with the viewer's role,
// and shows its secret on the page it answers with; only its hash is kept.
func (s *server) tokenCreate(w http.ResponseWriter, r *http.Request) {
	v := viewerFrom(r.Context())
	name := strings.Join(strings.Fields(r.PostFormValue("name")), " ")
	if name == "" || utf8.RuneCountInString(name) > maxTokenName {
		s.renderTokens(w, r, http.StatusUnprocessableEntity, TokensPage{
			Error: "Name the token after what will use it, in at most " + strconv.Itoa(maxTokenName) + " characters."})
		return
	}
	secret, err := s.st.CreateAPIToken(r.Context(), v.User.ID, name)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.log.Info("api token created", "user_id", v.User.ID, "name", name)
	s.renderTokens(w, r, http.StatusCreated, TokensPage{Secret: secret, Created: name})
}

// tokenRevoke revokes one of the viewer's own tokens.
func (s *server) tokenRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := viewerFrom(ctx)
	id, err := pathID(r, "id")
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	toks, err := s.st.APITokens(ctx, v.User.ID)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	i := slices.IndexFunc(toks, func(t tickets.APIToken) bool { return t.ID == id })
	if i < 0 {
		s.errorPage(w, r, tickets.ErrNotFound)
		return
	}
	if err := s.st.RevokeAPIToken(ctx, id); err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.log.Info("api token revoked", "user_id", v.User.ID, "token_id", id)
	s.flash(r, "Revoked the token "+toks[i].Name+".")
	s.redirect(w, r, "/tokens")
}
