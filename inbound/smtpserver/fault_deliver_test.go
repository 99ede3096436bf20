package smtpserver_test

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/inbound/smtpserver"
)

// faultDeliverer is what the fault test's server process delivers with.
func faultDeliverer(_ context.Context, pool *pgxpool.Pool, _ *slog.Logger) (smtpserver.DeliverFunc, error) {
	rs := &rawStore{pool: pool}
	return rs.Deliver, nil
}
