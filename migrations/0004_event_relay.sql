-- +goose Up

-- Wake the event relay when events are committed. NOTIFY is delivered at
-- COMMIT, so a listener never sees an event its transaction may still roll
-- back; the payload is empty because the relay reads the outbox anyway.
-- +goose StatementBegin
CREATE FUNCTION event_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ticketd_events', '');
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER event_outbox_notify AFTER INSERT ON event_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION event_outbox_notify();

-- The relay's re-triage sweep looks up a ticket's ticket.created events.
CREATE INDEX event_outbox_ticket_idx ON event_outbox (ticket_id, name, id);

-- +goose Down
DROP INDEX event_outbox_ticket_idx;
DROP TRIGGER event_outbox_notify ON event_outbox;
DROP FUNCTION event_outbox_notify();
