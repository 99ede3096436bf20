-- +goose Up

-- What intake did with each mail, step by step: how it arrived, how it was
-- read, classified and threaded, which commands ran, what was stored, and
-- which events and mails it caused. Written in the mail's own transaction;
-- one row per raw message, to which a later duplicate delivery and a
-- re-processing append steps. `ticketd trace` and the ticket page read it.
CREATE TABLE mail_traces (
    id             bigserial PRIMARY KEY,
    raw_message_id bigint NOT NULL UNIQUE REFERENCES raw_messages (id),
    message_id     text NOT NULL DEFAULT '',   -- the mail's Message-ID without <> (or the id ticketd made for it)
    ticket_id      bigint REFERENCES tickets (id) ON DELETE SET NULL,
    source         text NOT NULL,              -- smtp, imap, web, api
    steps          jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(steps) = 'array'),
    dropped_steps  integer NOT NULL DEFAULT 0, -- steps not kept because the trace was full
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mail_traces_message_id_idx ON mail_traces (message_id);
CREATE INDEX mail_traces_ticket_idx ON mail_traces (ticket_id);

-- Re-processing walks the raw mail received in a time window.
CREATE INDEX raw_messages_received_idx ON raw_messages (received_at, id);

-- +goose Down
DROP INDEX raw_messages_received_idx;
DROP TABLE mail_traces;
