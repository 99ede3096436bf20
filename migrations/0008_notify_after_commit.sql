-- +goose Up

-- A transaction that NOTIFYs holds one lock for the whole database from its
-- commit's start until the commit is durable, so that notifications are
-- queued in commit order: every such transaction waits for the previous
-- one's WAL flush, and intake's commits, which each queue an event, lose
-- PostgreSQL's group commit. A transaction that sets
-- ticketd.notify_after_commit to 'on' (intake does, with set_config(...,
-- true)) promises to notify the same channels itself once it has committed,
-- in a transaction of its own that writes nothing and so waits for no
-- flush. Every other writer is notified by the triggers as before.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION mail_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('ticketd.notify_after_commit', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_notify('mail_outbox', '');
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION event_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('ticketd.notify_after_commit', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_notify('ticketd_events', '');
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION mail_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mail_outbox', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION event_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ticketd_events', '');
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
