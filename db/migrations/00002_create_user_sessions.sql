-- +goose Up
-- A session is one login and its refresh-token family: every refresh rotates the session's
-- current token hash and records the spent one, so a spent token presented again is known to
-- belong to this family and revokes it.
CREATE TABLE user_sessions (
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_token_hash bytea NOT NULL CHECK (length(refresh_token_hash) = 32),
    refresh_generation integer NOT NULL DEFAULT 0,
    ip_address         inet,
    user_agent         text CHECK (length(user_agent) <= 512),
    created_at         timestamptz NOT NULL,
    last_used_at       timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,
    revoked_at         timestamptz,
    revoked_reason     text
);

CREATE UNIQUE INDEX user_sessions_refresh_token_hash_key ON user_sessions (refresh_token_hash);
CREATE INDEX user_sessions_user_id_idx ON user_sessions (user_id, created_at DESC);

-- The spent members of each refresh-token family.
CREATE TABLE spent_refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id uuid NOT NULL REFERENCES user_sessions (id) ON DELETE CASCADE,
    spent_at   timestamptz NOT NULL
);

CREATE INDEX spent_refresh_tokens_session_id_idx ON spent_refresh_tokens (session_id);

-- +goose Down
DROP TABLE spent_refresh_tokens;
DROP TABLE user_sessions;
