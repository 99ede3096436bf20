package admin_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"ticketd/admin"
	"ticketd/inbound"
)

// TestPortalIntakeFailures: when intake cannot store a mail, the requester
// is told and nothing is stored; a permanent refusal says so.
func TestPortalIntakeFailures(t *testing.T) {
	t.Parallel()
	var fail atomic.Pointer[error]
	e := newEnv(t, func(o *admin.Options) {
		deliver := o.Deliver
		o.Deliver = func(ctx context.Context, raw []byte, src inbound.Source) (inbound.Result, error) {
			if err := fail.Load(); err != nil {
				return inbound.Result{}, *err
			}
			return deliver(ctx, raw, src)
		}
	})
	seed := e.ticket("Seed", "x", e.req, nil, "")
	c := e.client()
	c.signInLink(e.req, seed.ID)
	for _, tc := range []struct {
		name   string
		err    error
		status int
		want   string
	}{
		{"temporary", errors.New("database is down"), http.StatusInternalServerError, "Something went wrong"},
		{"permanent", fmt.Errorf("%w: message too large", inbound.ErrRejected), http.StatusUnprocessableEntity, "Intake refused this message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fail.Store(&tc.err)
			res := c.post("/portal/new", url.Values{"subject": {"Help"}, "body": {"please"}})
			if res.StatusCode != tc.status || !strings.Contains(res.body, tc.want) {
				t.Fatalf("%d, want %d with %q", res.StatusCode, tc.status, tc.want)
			}
			if strings.Contains(res.body, "database is down") {
				t.Fatal("the page shows the internal error")
			}
			if n := e.count(`SELECT count(*) FROM tickets`); n != 1 {
				t.Fatalf("%d tickets, want only the seed", n)
			}
		})
	}
}
