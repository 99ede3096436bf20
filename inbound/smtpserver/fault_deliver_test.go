package smtpserver_test

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/inbound/smtpserver"
)

// faultDeliverer is what the fault test's server process delivers with:
// ticketd's intake.
func faultDeliverer(_ context.Context, pool *pgxpool.Pool, log *slog.Logger) (smtpserver.Options, error) {
	return intakeOptions(pool, log)
}
