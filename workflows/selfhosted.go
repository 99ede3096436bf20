package workflows

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/inngest/inngestgo"
)

// A self-hosted Inngest (`inngest start`, built from inngest v1.12.1) and
// the SDK ticketd uses (inngestgo v0.16.0) disagree in two places, and
// ticketd bridges both when it registers its functions with such a server:
//
//   - Sync. The server asks an app for its functions with a signed PUT, and
//     the SDK answers a signed PUT in band, with the functions in the
//     response, which this server does not read: it only takes functions
//     an app posts to its /fn/register (out of band). So the functions
//     would never be registered. ticketd registers itself instead: it asks
//     its own handler in band, as a server would, and posts the answer to
//     /fn/register with the signing key.
//   - Flow control. The SDK sends a concurrency limit as an object,
//     {"fn": [...], "step": [...]}, which this server reads as one limit
//     with no value, that is no limit at all: triage ran as many model
//     calls at once as there were tickets. The server reads a list of
//     limits (the older form, which newer servers and Inngest Cloud still
//     read), so ticketd sends the list.
//
// The dev server syncs by its own unsigned request, which the SDK answers
// out of band, and ignores flow control either way; Inngest Cloud reads
// the SDK's forms.

// errNotRegistered means a self-hosted Inngest has not taken ticketd's
// functions yet: an event sent now would start nothing, so events wait.
var errNotRegistered = errors.New("workflows: ticketd's functions are not registered with Inngest yet; events wait")

// registerSelfHosted registers ticketd's functions with the self-hosted
// server at the API base URL.
func (w *Workflows) registerSelfHosted(ctx context.Context) error {
	appURL := strings.TrimRight(w.opts.ServeOrigin, "/") + w.opts.ServePath
	ask, err := json.Marshal(map[string]string{"url": appURL})
	if err != nil {
		return err
	}
	sig, err := inngestgo.Sign(ctx, time.Now(), []byte(w.opts.SigningKey), ask)
	if err != nil {
		return fmt.Errorf("workflows: sign the sync request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, appURL, bytes.NewReader(ask))
	if err != nil {
		return fmt.Errorf("workflows: sync request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Inngest-Signature", sig)
	rec := &recordedResponse{header: http.Header{}}
	w.sdk.ServeHTTP(rec, req)
	if rec.code != 0 && rec.code != http.StatusOK {
		return fmt.Errorf("workflows: the SDK answered its sync request with %d: %s", rec.code, rec.body.Bytes())
	}
	var app struct {
		AppID       string                       `json:"app_id"`
		URL         string                       `json:"url"`
		SDKLanguage string                       `json:"sdk_language"`
		SDKVersion  string                       `json:"sdk_version"`
		Functions   []map[string]json.RawMessage `json:"functions"`
	}
	if err := json.Unmarshal(rec.body.Bytes(), &app); err != nil {
		return fmt.Errorf("workflows: read the SDK's functions: %w", err)
	}
	for _, f := range app.Functions {
		if c, ok := f["concurrency"]; ok {
			list, err := concurrencyList(c)
			if err != nil {
				return err
			}
			if list == nil {
				delete(f, "concurrency")
			} else {
				f["concurrency"] = list
			}
		}
	}
	body, err := json.Marshal(map[string]any{
		"v": "1", "url": app.URL, "deployType": "ping", "appName": app.AppID,
		"sdk":       app.SDKLanguage + ":v" + app.SDKVersion,
		"functions": app.Functions,
		"headers":   map[string]string{"env": w.opts.Env, "platform": ""},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	post, err := http.NewRequestWithContext(ctx, http.MethodPost, w.engineURL+"/fn/register", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("workflows: register request: %w", err)
	}
	post.Header.Set("Content-Type", "application/json")
	post.Header.Set("Authorization", "Bearer "+HashedSigningKey(w.opts.SigningKey))
	resp, err := w.http.Do(post)
	if err != nil {
		return fmt.Errorf("workflows: register with Inngest at %s: %w", w.engineURL, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode > 299 {
		return fmt.Errorf("workflows: Inngest at %s refused the registration: %s: %s", w.engineURL, resp.Status, bytes.TrimSpace(answer))
	}
	w.log.Info("registered ticketd's functions with Inngest", "url", w.engineURL, "app_url", app.URL, "functions", len(app.Functions))
	return nil
}

// concurrencyList rewrites the SDK's {"fn": [...], "step": [...]} as the
// list of its limits; nil when there are none. Anything else is passed on.
func concurrencyList(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return raw, nil
	}
	var c struct {
		Fn   []json.RawMessage `json:"fn"`
		Step []json.RawMessage `json:"step"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("workflows: read a concurrency limit: %w", err)
	}
	limits := append(c.Step, c.Fn...)
	if len(limits) == 0 {
		return nil, nil
	}
	return json.Marshal(limits)
}

// HashedSigningKey is how an app shows a self-hosted Inngest or Inngest
// Cloud that it holds the signing key: the SHA-256 of the key's bytes
// (hex-decoded), in hex, after the key's "signkey-<env>-" prefix if it has
// one.
func HashedSigningKey(key string) string {
	prefix := ""
	if rest, ok := strings.CutPrefix(key, "signkey-"); ok {
		if i := strings.IndexByte(rest, '-'); i >= 0 {
			prefix = key[:len("signkey-")+i+1]
		}
	}
	raw, err := hex.DecodeString(strings.TrimPrefix(key, prefix))
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(raw)
	return prefix + hex.EncodeToString(sum[:])
}

// recordedResponse keeps what a handler called in process answers.
type recordedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recordedResponse) Header() http.Header { return r.header }
func (r *recordedResponse) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recordedResponse) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}
