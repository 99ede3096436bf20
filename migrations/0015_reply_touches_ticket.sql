-- +goose Up

-- A ticket's updated_at is its last activity: a change, and now also a
-- message added to its thread after the opening one (a reply by mail or on
-- the web, a note, a bounce attached to it), so that lists sorted by
-- "updated" bring up the tickets people just wrote to.
-- +goose StatementBegin
CREATE FUNCTION messages_touch_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tickets SET updated_at = now() WHERE id = NEW.ticket_id AND updated_at < now();
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER messages_touch_ticket AFTER INSERT ON messages FOR EACH ROW
    WHEN (NEW.kind <> 'opening') EXECUTE FUNCTION messages_touch_ticket();

-- +goose Down
DROP TRIGGER messages_touch_ticket ON messages;
DROP FUNCTION messages_touch_ticket();
