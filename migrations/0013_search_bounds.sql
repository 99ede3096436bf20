-- +goose Up

-- to_tsvector refuses a text of 1 MB or more, and the search document is
-- built at every change of a ticket: one ticket opened with a huge subject
-- (a mail's subject is unbounded) refused every change after. Each part of
-- the document is bounded now; intake also cuts new subjects to 1,000
-- characters.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ticket_search_document(subject text, summary text, description text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector('simple', left(subject, 1000)), 'A') ||
        setweight(to_tsvector('simple', left(summary, 4000)), 'B') ||
        setweight(to_tsvector('simple', left(description, 4000)), 'C')
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ticket_search_document(subject text, summary text, description text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector('simple', subject), 'A') ||
        setweight(to_tsvector('simple', summary), 'B') ||
        setweight(to_tsvector('simple', left(description, 4000)), 'C')
$$;
-- +goose StatementEnd
