package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"ticketd/pgtest"
	"ticketd/testlog"
	"ticketd/workflows/inngesttest"
)

// forgedCall is what an attacker posts to /api/inngest: run the function
// that mails an assignee, with an event of their own.
const forgedCall = `{"event":{"name":"ticket.assigned","data":{"ticket_id":1,"assignee_id":2,"previous_assignee_id":3}},` +
	`"ctx":{"run_id":"01FORGED","attempt":0},"steps":{},"use_api":false}`

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	res, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestUnsignedWorkflowCallsOnLoopbackOnly: with the Inngest dev server,
// whose calls carry no signature, ticketd serves /api/inngest on the
// loopback listener INNGEST_LISTEN, which the real dev server syncs and
// calls; on HTTP_LISTEN the same unsigned call is refused.
func TestUnsignedWorkflowCallsOnLoopbackOnly(t *testing.T) {
	inngestAddr := freeAddr(t)
	appURL := "http://" + inngestAddr + "/api/inngest"
	dev := inngesttest.Start(t, inngesttest.Options{})
	s := startServeWith(t, map[string]string{"INNGEST_DEV": dev.URL, "INNGEST_LISTEN": inngestAddr}, testlog.New(t))
	dev.Sync(t, appURL, 5)

	call := "/api/inngest?fnId=ticketd-notify-assigned&stepId=step"
	if code, body := post(t, "http://"+s.httpAddr+call, forgedCall); code != http.StatusUnauthorized {
		t.Errorf("an unsigned call on HTTP_LISTEN answered %d %s, want 401", code, body)
	}
	if code, body := post(t, "http://"+inngestAddr+call, forgedCall); code != http.StatusOK && code != http.StatusPartialContent {
		t.Errorf("an unsigned call on INNGEST_LISTEN answered %d %s, want it run", code, body)
	}
	// A sync request on the public listener changes nothing either.
	req, _ := http.NewRequest(http.MethodPut, "http://"+s.httpAddr+"/api/inngest", nil)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("an unsigned sync on HTTP_LISTEN: %v, %v", res, err)
	} else {
		res.Body.Close()
	}
}

// TestUnsignedWorkflowCallsNeedALoopbackListener: with INNGEST_DEV, serve
// refuses to start when INNGEST_LISTEN is off or reachable from elsewhere.
func TestUnsignedWorkflowCallsNeedALoopbackListener(t *testing.T) {
	for _, listen := range []string{"off", "0.0.0.0:" + strings.Split(freeAddr(t), ":")[1], "[::]:0", "192.0.2.10:8289"} {
		t.Run(listen, func(t *testing.T) {
			cfg, err := LoadConfig(env(map[string]string{
				"DATABASE_URL": pgtest.URL(t), "TICKETD_SECRET": "a test secret 0123456789", "MAILDIR": t.TempDir(),
				"HTTP_LISTEN": freeAddr(t), "SMTP_LISTEN": "off", "INNGEST_DEV": "http://127.0.0.1:1", "INNGEST_LISTEN": listen,
			}))
			if err != nil {
				t.Fatal(err)
			}
			err = serve(context.Background(), cfg, testlog.New(t))
			if err == nil || !strings.Contains(err.Error(), "INNGEST_LISTEN") {
				t.Fatalf("serve = %v, want a refusal naming INNGEST_LISTEN", err)
			}
		})
	}
}
