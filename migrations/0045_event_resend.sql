-- +goose Up

-- A sent event is sent once more, with the same id, a while after the first
-- send. Inngest runs an event id once, so the second send starts nothing
-- when the first got through; it starts the runs when the engine lost the
-- event between taking it and scheduling its runs (a self-hosted Inngest
-- restarted, or its Redis, at that moment).
ALTER TABLE event_outbox ADD COLUMN resend_at timestamptz;
CREATE INDEX event_outbox_resend_idx ON event_outbox (resend_at, id) WHERE resend_at IS NOT NULL;

-- +goose Down
DROP INDEX event_outbox_resend_idx;
ALTER TABLE event_outbox DROP COLUMN resend_at;
