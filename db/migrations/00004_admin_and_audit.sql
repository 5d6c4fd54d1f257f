-- +goose Up
-- Substring search over users for the admin list.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Keyset pagination by creation time; email and username sort on their unique lower() indexes.
CREATE INDEX users_created_at_id_idx ON users (created_at DESC, id DESC);
-- One trigram index serves `q` over email, username and full name (searchText in users/list.go).
-- fastupdate off: a GIN pending list must be scanned whole by every search until it is merged,
-- which made p99 swing by tens of milliseconds; users are written rarely and read often.
CREATE INDEX users_search_trgm_idx ON users
    USING gin ((lower(email) || ' ' || lower(username) || ' ' || lower(coalesce(full_name, ''))) gin_trgm_ops)
    WITH (fastupdate = off);
-- The last-admin guard counts active admins.
CREATE INDEX users_active_admins_idx ON users (id) WHERE role = 'admin' AND is_active;

-- The audit trail. No foreign keys: it outlives the users and sessions it names.
CREATE TABLE audit_events (
    id          uuid PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    actor_id    uuid,
    action      text NOT NULL CHECK (action ~ '^[a-z_.]{1,64}$'),
    target_type text CHECK (target_type IN ('user', 'session')),
    target_id   text CHECK (length(target_id) <= 64),
    outcome     text NOT NULL CHECK (outcome IN ('success', 'failure')),
    ip_address  inet,
    user_agent  text CHECK (length(user_agent) <= 512),
    request_id  text CHECK (length(request_id) <= 64),
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(detail) = 'object' AND length(detail::text) <= 4096)
);

CREATE INDEX audit_events_occurred_idx ON audit_events (occurred_at DESC, id DESC);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, occurred_at DESC, id DESC);
CREATE INDEX audit_events_target_idx ON audit_events (target_type, target_id, occurred_at DESC, id DESC);
CREATE INDEX audit_events_action_idx ON audit_events (action, occurred_at DESC, id DESC);

-- +goose Down
DROP TABLE audit_events;
DROP INDEX users_active_admins_idx;
DROP INDEX users_search_trgm_idx;
DROP INDEX users_created_at_id_idx;
DROP EXTENSION IF EXISTS pg_trgm;
