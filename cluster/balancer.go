package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxBalancedBody bounds a request body the balancer holds to try it on
// another replica; the web's uploads stay below it.
const maxBalancedBody = 40 << 20

// Balancer is the cluster's HTTP load balancer: the one address of the web
// pages, the API and /api/inngest, in front of every replica's
// HTTP_LISTEN. Requests go to the replicas in turn; one whose connection
// is refused (a replica that is down) is tried on the next, so nothing was
// sent twice. Inngest calls the functions at this one URL, as it would a
// site's load balancer.
type Balancer struct {
	// Addr is host:port; URL is http://Addr.
	Addr, URL string

	srv      *http.Server
	ln       net.Listener
	next     atomic.Uint64
	mu       sync.RWMutex
	backends []string
	client   *http.Transport
	log      *slog.Logger
}

// StartBalancer listens on a free loopback port.
func StartBalancer(backends []string, log *slog.Logger) (*Balancer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cluster: balancer: %w", err)
	}
	b := &Balancer{Addr: ln.Addr().String(), ln: ln, backends: backends, log: log,
		client: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		}}
	b.URL = "http://" + b.Addr
	b.srv = &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic", "component", "balancer", "panic", r)
			}
		}()
		if err := b.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("balancer stopped", "err", err)
		}
	}()
	return b, nil
}

// Close stops the balancer.
func (b *Balancer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := b.srv.Shutdown(ctx)
	b.client.CloseIdleConnections()
	return err
}

func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBalancedBody+1))
	if err != nil {
		http.Error(w, "balancer: reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxBalancedBody {
		http.Error(w, "balancer: request too large", http.StatusRequestEntityTooLarge)
		return
	}
	b.mu.RLock()
	backends := b.backends
	b.mu.RUnlock()
	start := b.next.Add(1)
	var lastErr error
	for i := range backends {
		backend := backends[(start+uint64(i))%uint64(len(backends))]
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.URL.Scheme, out.URL.Host = "http", backend
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			out.Header.Set("X-Forwarded-For", host)
		}
		resp, err := b.client.RoundTrip(out)
		if err != nil {
			lastErr = err
			if refused(err) {
				continue // nothing was sent: the next replica may take it
			}
			break
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return
	}
	b.log.Warn("balancer: no replica answered", "path", r.URL.Path, "err", lastErr)
	http.Error(w, "balancer: no replica answered", http.StatusBadGateway)
}

// refused reports whether a request failed before anything was sent.
func refused(err error) bool {
	var op *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &op) && op.Op == "dial") ||
		strings.Contains(err.Error(), "connection refused")
}
