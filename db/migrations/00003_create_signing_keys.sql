-- +goose Up
-- Access-token signing keys, shared by every instance on the database. A key is published in the
-- JWKS from creation, signs from activates_at, and is dropped from the JWKS once tokens it signed
-- can no longer be valid.
CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    algorithm    text NOT NULL,
    private_key  bytea NOT NULL,
    sealed       boolean NOT NULL,
    created_at   timestamptz NOT NULL,
    activates_at timestamptz NOT NULL
);

CREATE INDEX signing_keys_activates_at_idx ON signing_keys (activates_at DESC);

-- +goose Down
DROP TABLE signing_keys;
