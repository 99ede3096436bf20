-- +goose Up

-- A model's decision records what was sent to it and what it cost: the
-- messages (the prompt and the fenced ticket, and a repair request when there
-- was one) and the tokens the provider counted.
ALTER TABLE ai_decisions
    ADD COLUMN messages jsonb,
    ADD COLUMN prompt_tokens integer NOT NULL DEFAULT 0,
    ADD COLUMN completion_tokens integer NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE ai_decisions DROP COLUMN messages, DROP COLUMN prompt_tokens, DROP COLUMN completion_tokens;
