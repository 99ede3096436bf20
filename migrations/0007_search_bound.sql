-- +goose Up

-- The full-text index reads the first 4,000 characters of a ticket's
-- description instead of 100,000: what a ticket is about is said at its top,
-- and computing the tsvector of a long pasted log took milliseconds of every
-- such mail's transaction (about 10 ms for 100 KB of text). PostgreSQL 15
-- cannot change a generated column's expression, so the column is made anew
-- (this rewrites the tickets table once).
ALTER TABLE tickets DROP COLUMN search;
ALTER TABLE tickets ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', subject), 'A') ||
    setweight(to_tsvector('simple', summary), 'B') ||
    setweight(to_tsvector('simple', left(description, 4000)), 'C')) STORED;
CREATE INDEX tickets_search_idx ON tickets USING gin (search);

-- +goose Down
ALTER TABLE tickets DROP COLUMN search;
ALTER TABLE tickets ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', subject), 'A') ||
    setweight(to_tsvector('simple', summary), 'B') ||
    setweight(to_tsvector('simple', left(description, 100000)), 'C')) STORED;
CREATE INDEX tickets_search_idx ON tickets USING gin (search);
