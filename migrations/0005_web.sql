-- +goose Up

-- Web sessions, in the layout of github.com/alexedwards/scs/pgxstore.
CREATE TABLE sessions (
    token  text PRIMARY KEY,
    data   bytea NOT NULL,
    expiry timestamptz NOT NULL
);
CREATE INDEX sessions_expiry_idx ON sessions (expiry);

-- One-time sign-in links for the requesters' portal, stored as SHA-256 of
-- the secret; a link works once, before it expires.
CREATE TABLE portal_sign_in_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    remote_addr text NOT NULL DEFAULT ''
);
CREATE INDEX portal_sign_in_tokens_user_idx ON portal_sign_in_tokens (user_id, created_at);
CREATE INDEX portal_sign_in_tokens_expires_idx ON portal_sign_in_tokens (expires_at);

-- Recent sign-in attempts that count against a limit: failed passwords per
-- account and per client address, and sign-in link requests. Shared by
-- every replica, pruned as they age out.
CREATE TABLE web_attempts (
    id         bigserial PRIMARY KEY,
    key        text NOT NULL,           -- 'account:<email>', 'ip:<addr>', 'link:<email>', 'link-ip:<addr>'
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX web_attempts_key_idx ON web_attempts (key, created_at);
CREATE INDEX web_attempts_created_idx ON web_attempts (created_at);

-- The tickets list's default order: priority, then oldest first.
CREATE INDEX tickets_priority_age_idx ON tickets (priority DESC, created_at, id);

-- +goose Down
DROP INDEX tickets_priority_age_idx;
DROP TABLE web_attempts, portal_sign_in_tokens, sessions;
