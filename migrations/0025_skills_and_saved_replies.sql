-- +goose Up

-- What admins tell triage about a skill, on the skills page: what it is, and
-- the words tickets use when they need it, beyond its name. A skill is in
-- the vocabulary while a staff member holds it; a definition may wait for
-- its first holder.
CREATE TABLE skill_definitions (
    name        text PRIMARY KEY CHECK (name <> '' AND name = lower(btrim(name))),
    description text NOT NULL DEFAULT '',
    terms       text[] NOT NULL DEFAULT '{}',
    updated_by  bigint REFERENCES users (id) ON DELETE SET NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Answers admins write once: staff insert them when they reply on the web,
-- and triage proposes the one that fits a new ticket well as its first
-- response. They fit tickets needing their skills, or using their words,
-- in their language when one is set.
CREATE TABLE saved_replies (
    id         bigserial PRIMARY KEY,
    title      text NOT NULL CHECK (title <> ''),
    body       text NOT NULL CHECK (body <> ''),
    skills     text[] NOT NULL DEFAULT '{}',
    terms      text[] NOT NULL DEFAULT '{}',
    language   text NOT NULL DEFAULT '',
    created_by bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE saved_replies, skill_definitions;
