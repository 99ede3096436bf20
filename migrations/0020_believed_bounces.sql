-- +goose Up

-- An address is marked bouncing (users.bouncing_since) only by a delivery
-- report that came back to the return path of a mail ticketd sent to it
-- (bounces+<token>@domain, one per mail) and names that address. Each such
-- report is kept here with what it said, until the mark clears: when the
-- relay later accepts a mail to the address, or an admin clears it on the
-- People page. A report about a mail sent before the last clearing is not
-- believed again (a replayed or late report).
CREATE TABLE bounces (
    id             bigserial PRIMARY KEY,
    user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    mail_id        bigint REFERENCES mail_outbox (id) ON DELETE SET NULL,
    raw_message_id bigint REFERENCES raw_messages (id) ON DELETE SET NULL,
    detail         text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    cleared_at     timestamptz,
    cleared_by     bigint REFERENCES users (id) ON DELETE SET NULL, -- NULL with cleared_at: a later delivery
    cleared_how    text NOT NULL DEFAULT ''
);
CREATE INDEX bounces_user_idx ON bounces (user_id, id);

-- Marks set before reports had to come back to a return path could have
-- come from anyone (a forged X-Failed-Recipients was enough): they are
-- cleared, and a real bounce marks the address again at the next mail.
UPDATE users SET bouncing_since = NULL, updated_at = now() WHERE bouncing_since IS NOT NULL;

-- +goose Down
DROP TABLE bounces;
