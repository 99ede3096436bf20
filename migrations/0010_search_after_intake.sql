-- +goose Up

-- A ticket's full-text document is built at its first change after intake
-- (triage writes its summary, priority and assignee within seconds) instead
-- of in the transaction of the mail that opens it: computing the document
-- and adding its lexemes to the GIN index was about a third of PostgreSQL's
-- work for a mail of 1 KB, and triage rewrote the row, and so the document,
-- moments later anyway. Until then search is NULL, and searches compute
-- those few tickets' documents as they read them (tickets_search_pending_idx
-- finds them); the web's upkeep fills in any that no change reached.
ALTER TABLE tickets DROP COLUMN search;
ALTER TABLE tickets ADD COLUMN search tsvector;

-- +goose StatementBegin
CREATE FUNCTION ticket_search_document(subject text, summary text, description text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector('simple', subject), 'A') ||
        setweight(to_tsvector('simple', summary), 'B') ||
        setweight(to_tsvector('simple', left(description, 4000)), 'C')
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION tickets_search_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search := ticket_search_document(NEW.subject, NEW.summary, NEW.description);
    RETURN NEW;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER tickets_search BEFORE UPDATE ON tickets FOR EACH ROW
    WHEN (NEW.search IS NULL OR NEW.subject IS DISTINCT FROM OLD.subject
        OR NEW.summary IS DISTINCT FROM OLD.summary OR NEW.description IS DISTINCT FROM OLD.description)
    EXECUTE FUNCTION tickets_search_update();

UPDATE tickets SET search = ticket_search_document(subject, summary, description);
CREATE INDEX tickets_search_idx ON tickets USING gin (search);
CREATE INDEX tickets_search_pending_idx ON tickets (id) WHERE search IS NULL;

-- +goose Down
DROP TRIGGER tickets_search ON tickets;
DROP FUNCTION tickets_search_update();
ALTER TABLE tickets DROP COLUMN search;
DROP FUNCTION ticket_search_document(text, text, text);
ALTER TABLE tickets ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', subject), 'A') ||
    setweight(to_tsvector('simple', summary), 'B') ||
    setweight(to_tsvector('simple', left(description, 4000)), 'C')) STORED;
CREATE INDEX tickets_search_idx ON tickets USING gin (search);
