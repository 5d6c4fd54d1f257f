-- +goose Up
-- Password guesses being tested while Redis is unreachable: each instance then counts an
-- account's failed logins in process, and checks them against the failures audited in
-- PostgreSQL (auth.Service.sharedBudget). A guess in flight is not audited until its hash is
-- done, so guesses sent at once to several instances would all read the same audit and all be
-- tested. Each reserves its place here, under a per-account lock, before its hash, and is
-- counted with the audited failures until it ends. A row left by an instance that died is
-- counted as the failure it may have been, and deleted once older than the replay reads.
-- A new table, unseen by instances of the previous version.
CREATE TABLE password_guesses_in_flight (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL,
    started_at timestamptz NOT NULL
);
CREATE INDEX password_guesses_in_flight_user_idx ON password_guesses_in_flight (user_id, started_at);

-- +goose Down
DROP TABLE password_guesses_in_flight;
