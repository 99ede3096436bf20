-- +goose Up

CREATE TYPE user_role AS ENUM ('user', 'moderator', 'admin');
CREATE TYPE ticket_status AS ENUM ('todo', 'in_progress', 'completed');
CREATE TYPE ticket_priority AS ENUM ('low', 'medium', 'high');
CREATE TYPE actor_channel AS ENUM ('mail', 'web', 'api', 'ai', 'cli', 'system');

-- Everyone ticketd knows: requesters (created on their first mail), moderators and admins.
CREATE TABLE users (
    id               bigserial PRIMARY KEY,
    email            text NOT NULL CHECK (email <> '' AND email = btrim(email)),
    name             text NOT NULL DEFAULT '',
    role             user_role NOT NULL DEFAULT 'user',
    skills           text[] NOT NULL DEFAULT '{}',
    password_hash    text,                -- NULL: cannot sign in with a password
    active           boolean NOT NULL DEFAULT true,
    bouncing_since   timestamptz,         -- set when a bounce names this address
    last_assigned_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Every mail exactly as it arrived, content-addressed, kept for audit and re-processing.
CREATE TABLE raw_messages (
    id           bigserial PRIMARY KEY,
    sha256       bytea NOT NULL UNIQUE CHECK (octet_length(sha256) = 32),
    data         bytea NOT NULL,
    source       text NOT NULL CHECK (source IN ('smtp', 'imap', 'web', 'api')),
    mailbox      text,                    -- imap: the checkpoint key of the mailbox
    uid          bigint,                  -- imap: the message's UID there
    remote_addr  text,                    -- smtp: the client's address
    mail_from    text,                    -- smtp: the envelope sender ('' = null sender)
    rcpt_to      text[] NOT NULL DEFAULT '{}',
    received_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (source <> 'imap' OR (mailbox IS NOT NULL AND uid IS NOT NULL))
);

CREATE TABLE tickets (
    id                bigserial PRIMARY KEY,
    subject           text NOT NULL DEFAULT '',
    description       text NOT NULL DEFAULT '',   -- the opening message's text
    status            ticket_status NOT NULL DEFAULT 'todo',
    priority          ticket_priority NOT NULL DEFAULT 'medium',
    requester_id      bigint NOT NULL REFERENCES users (id),
    assignee_id       bigint REFERENCES users (id),
    skills            text[] NOT NULL DEFAULT '{}',
    suggested_skills  text[] NOT NULL DEFAULT '{}', -- proposed by triage, unknown to the moderators' vocabulary
    category          text NOT NULL DEFAULT '',
    language          text NOT NULL DEFAULT '',
    summary           text NOT NULL DEFAULT '',
    helpful_notes     text NOT NULL DEFAULT '',
    first_response    text NOT NULL DEFAULT '',
    assignment_reason text NOT NULL DEFAULT '',
    auto_kind         text NOT NULL DEFAULT 'none', -- 'auto-generated' or 'bulk' tickets get no automatic answer
    linked_ticket_id  bigint REFERENCES tickets (id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    triaged_at        timestamptz,
    assigned_at       timestamptz,
    completed_at      timestamptz,
    search            tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', subject), 'A') ||
        setweight(to_tsvector('simple', summary), 'B') ||
        setweight(to_tsvector('simple', left(description, 100000)), 'C')) STORED,
    CHECK ((status = 'completed') = (completed_at IS NOT NULL))
);
CREATE INDEX tickets_status_idx ON tickets (status, priority DESC, created_at);
CREATE INDEX tickets_assignee_idx ON tickets (assignee_id, status);
CREATE INDEX tickets_requester_idx ON tickets (requester_id);
CREATE INDEX tickets_search_idx ON tickets USING gin (search);
CREATE INDEX tickets_skills_idx ON tickets USING gin (skills);

-- The people of a ticket besides its assignee: the requester and those copied on the opening mail.
CREATE TABLE ticket_participants (
    ticket_id  bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES users (id),
    kind       text NOT NULL CHECK (kind IN ('requester', 'cc')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ticket_id, user_id)
);

-- The thread: every mail in and out, and notes written on the web.
CREATE TABLE messages (
    id             bigserial PRIMARY KEY,
    ticket_id      bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    direction      text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    kind           text NOT NULL DEFAULT 'reply' CHECK (kind IN ('opening', 'reply', 'note', 'system')),
    internal       boolean NOT NULL DEFAULT false,  -- notes and system notes are never mailed to the requester
    author_id      bigint REFERENCES users (id),
    message_id     text NOT NULL CHECK (message_id <> ''),
    in_reply_to    text NOT NULL DEFAULT '',
    refs           text[] NOT NULL DEFAULT '{}',    -- References, oldest first
    from_address   text NOT NULL DEFAULT '',
    from_name      text NOT NULL DEFAULT '',
    to_addresses   text[] NOT NULL DEFAULT '{}',
    cc_addresses   text[] NOT NULL DEFAULT '{}',
    subject        text NOT NULL DEFAULT '',
    text_body      text NOT NULL DEFAULT '',        -- the whole readable text
    html_body      text NOT NULL DEFAULT '',        -- as received; sanitised before any page shows it
    reply_text     text NOT NULL DEFAULT '',        -- the new part, without quotes, signature or commands
    signature      text NOT NULL DEFAULT '',
    auto_kind      text NOT NULL DEFAULT 'none',
    thread_rule    text NOT NULL DEFAULT '',        -- how intake found the ticket: reply-address, in-reply-to, references, subject-tag, new, web
    raw_message_id bigint REFERENCES raw_messages (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (direction, message_id)
);
CREATE INDEX messages_ticket_idx ON messages (ticket_id, created_at);
CREATE INDEX messages_raw_idx ON messages (raw_message_id);
CREATE INDEX messages_message_id_idx ON messages (message_id);

CREATE TABLE attachments (
    id           bigserial PRIMARY KEY,
    message_id   bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    filename     text NOT NULL DEFAULT '',
    content_type text NOT NULL DEFAULT 'application/octet-stream',
    content_id   text NOT NULL DEFAULT '',
    inline       boolean NOT NULL DEFAULT false,
    size         bigint NOT NULL CHECK (size >= 0),
    sha256       bytea NOT NULL CHECK (octet_length(sha256) = 32),
    data         bytea                      -- NULL when over the size limit; the raw mail still holds it
);
CREATE INDEX attachments_message_idx ON attachments (message_id);

-- Automatic mail that matched no ticket: held for an admin, never deleted silently.
CREATE TABLE quarantine (
    id                bigserial PRIMARY KEY,
    raw_message_id    bigint NOT NULL REFERENCES raw_messages (id),
    auto_kind         text NOT NULL,
    reason            text NOT NULL,
    from_address      text NOT NULL DEFAULT '',
    subject           text NOT NULL DEFAULT '',
    message_id        text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    released_at       timestamptz,
    released_by       bigint REFERENCES users (id),
    released_ticket_id bigint REFERENCES tickets (id)
);
CREATE INDEX quarantine_open_idx ON quarantine (created_at) WHERE released_at IS NULL;

-- Events for the workflow engine, written in the transaction that causes them.
CREATE TABLE event_outbox (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL CHECK (name LIKE 'ticket.%'),
    ticket_id       bigint REFERENCES tickets (id) ON DELETE SET NULL,
    data            jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text NOT NULL DEFAULT '',
    sent_at         timestamptz
);
CREATE INDEX event_outbox_pending_idx ON event_outbox (next_attempt_at, id) WHERE sent_at IS NULL;

-- Mail to send, composed and written in the transaction of the change it announces.
CREATE TABLE mail_outbox (
    id              bigserial PRIMARY KEY,
    ticket_id       bigint REFERENCES tickets (id) ON DELETE SET NULL,
    kind            text NOT NULL,          -- acknowledgement, assignment, reply, status, completion, receipt, forward, sign-in
    dedupe_key      text UNIQUE,            -- makes a retried workflow step a no-op
    message_id      text NOT NULL UNIQUE CHECK (message_id <> ''),
    envelope_from   text NOT NULL DEFAULT '',
    recipients      text[] NOT NULL CHECK (cardinality(recipients) > 0),
    automatic       boolean NOT NULL DEFAULT true,
    data            bytea NOT NULL,         -- the whole RFC 5322 message
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX mail_outbox_pending_idx ON mail_outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX mail_outbox_recipients_idx ON mail_outbox USING gin (recipients);
CREATE INDEX mail_outbox_ticket_idx ON mail_outbox (ticket_id);

-- Who changed what, and through which channel.
CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    ticket_id  bigint REFERENCES tickets (id) ON DELETE CASCADE,
    actor_id   bigint REFERENCES users (id),
    channel    actor_channel NOT NULL,
    action     text NOT NULL,
    old_value  text NOT NULL DEFAULT '',
    new_value  text NOT NULL DEFAULT '',
    detail     text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_ticket_idx ON audit_log (ticket_id, id);

-- One checkpoint per polled mailbox.
CREATE TABLE imap_checkpoints (
    mailbox     text PRIMARY KEY,           -- imap://user@host/Mailbox, never a password
    uidvalidity bigint NOT NULL,
    last_uid    bigint NOT NULL DEFAULT 0 CHECK (last_uid >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every triage decision, whether an LLM or the rules made it.
CREATE TABLE ai_decisions (
    id             bigserial PRIMARY KEY,
    ticket_id      bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    provider       text NOT NULL,
    model          text NOT NULL DEFAULT '',
    prompt_version text NOT NULL DEFAULT '',
    input_hash     bytea NOT NULL,
    raw_output     text NOT NULL DEFAULT '',
    output         jsonb,                    -- the validated result
    latency_ms     integer NOT NULL DEFAULT 0,
    error          text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ai_decisions_ticket_idx ON ai_decisions (ticket_id, id);

-- Bearer tokens for /api/v1, stored as SHA-256 of the secret.
CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '',
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- +goose Down
DROP TABLE api_tokens, ai_decisions, imap_checkpoints, audit_log, mail_outbox, event_outbox,
    quarantine, attachments, messages, ticket_participants, tickets, raw_messages, users;
DROP TYPE actor_channel, ticket_priority, ticket_status, user_role;
