-- +goose Up
-- What the admin list's `q` and sort keys need of a user, kept beside users by triggers in the
-- writing transaction. A candidate of the trigram index is rechecked from the stored text
-- instead of lowering and joining three fields (most of the cost of a medium-selectivity
-- search), and a page of matches is sorted here before any users row is read.
CREATE TABLE users_search (
    id         uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    email      text NOT NULL, -- lower(email)
    username   text NOT NULL, -- lower(username)
    search     text NOT NULL  -- lower(email) || ' ' || lower(username) || ' ' || lower(coalesce(full_name, ''))
);

-- +goose StatementBegin
CREATE FUNCTION users_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO users_search (id, created_at, email, username, search)
    VALUES (NEW.id, NEW.created_at, lower(NEW.email), lower(NEW.username),
            lower(NEW.email) || ' ' || lower(NEW.username) || ' ' || lower(coalesce(NEW.full_name, '')))
    ON CONFLICT (id) DO UPDATE
        SET created_at = EXCLUDED.created_at, email = EXCLUDED.email, username = EXCLUDED.username, search = EXCLUDED.search;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER users_search_insert AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION users_search_sync();
CREATE TRIGGER users_search_update AFTER UPDATE OF email, username, full_name, created_at ON users
    FOR EACH ROW
    WHEN ((OLD.email, OLD.username, OLD.full_name, OLD.created_at) IS DISTINCT FROM (NEW.email, NEW.username, NEW.full_name, NEW.created_at))
    EXECUTE FUNCTION users_search_sync();

INSERT INTO users_search (id, created_at, email, username, search)
SELECT id, created_at, lower(email), lower(username), lower(email) || ' ' || lower(username) || ' ' || lower(coalesce(full_name, ''))
FROM users;

-- The trigram index moves here under its old name; fastupdate off as in 00004 (a pending list is
-- scanned whole by every search).
DROP INDEX users_search_trgm_idx;
CREATE INDEX users_search_trgm_idx ON users_search USING gin (search gin_trgm_ops) WITH (fastupdate = off);
-- How many users hold each common trigram (most_common_elems of the expression), kept by
-- ANALYZE: users.List leaves trigrams that most users hold out of the index condition.
CREATE STATISTICS users_search_trgm_stats ON (show_trgm(search)) FROM users_search;

-- +goose Down
DROP TRIGGER users_search_update ON users;
DROP TRIGGER users_search_insert ON users;
DROP FUNCTION users_search_sync();
DROP TABLE users_search;
CREATE INDEX users_search_trgm_idx ON users
    USING gin ((lower(email) || ' ' || lower(username) || ' ' || lower(coalesce(full_name, ''))) gin_trgm_ops)
    WITH (fastupdate = off);
