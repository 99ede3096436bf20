package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"ticketd/cluster"
)

// clusterCommand runs the production shape on this machine in the
// foreground (package cluster): PostgreSQL, Redis, inngest start, several
// `ticketd serve` replicas behind an HTTP balancer and behind Postfix as
// the MX, Dovecot with the support mailbox, and a sink for outgoing mail,
// all on loopback with their state in TICKETD_DATA_DIR/cluster. Ctrl-C
// stops every part.
func clusterCommand(ctx context.Context, cfg Config, log *slog.Logger, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stdout)
	replicas := fs.Int("replicas", 3, "how many ticketd serve replicas")
	dir := fs.String("dir", filepath.Join(cfg.DataDir, "cluster"), "where every part keeps its state")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *replicas < 1 || *replicas > 250 {
		return errors.New("--replicas: between 1 and 250")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the ticketd binary: %w", err)
	}
	inngest, err := filepath.Abs(cfg.InngestBin)
	if err != nil {
		return err
	}
	c, err := cluster.Start(ctx, cluster.Options{Dir: *dir, Ticketd: self, Inngest: inngest, Replicas: *replicas,
		Domain: cfg.Domain, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		log.Info("stopping the cluster")
		c.Stop()
		log.Info("cluster stopped")
	}()
	cfg.DatabaseURL, cfg.BaseURL = c.DatabaseURL, c.Balancer.URL
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	err = ensureAdmin(ctx, pool, cfg, stdout)
	pool.Close()
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(*dir)
	fmt.Fprintf(stdout, `
ticketd cluster is up: %d replicas of ticketd serve on self-hosted Inngest.
  mx (Postfix)  smtp://%s     mail to %s
  mailbox       %s   (every replica lists it; one polls at a time)
  web, API      %s   (a balancer in front of every replica; Inngest calls /api/inngest here)
  inngest start %s   (state in PostgreSQL and Redis %s)
  postgres      %s
  sent mail     %s/new   (the relay sink)
  keys          %s/keys.env
  logs          %s/*.log
Ctrl-C stops everything.

`, len(c.Replicas), c.Postfix.Addr, c.SupportAddress, c.IMAPURL, c.Balancer.URL, c.Inngest.URL, c.Redis.Addr,
		c.DatabaseURL, c.Sink.Maildir, abs, abs)
	<-ctx.Done()
	return nil
}
