-- +goose Up
-- How long a token signed with each key can stay valid: the longest access-token lifetime (TTL
-- plus clock skew) of any instance that has loaded the key to sign with. A key is pruned once
-- its successor has signed for that long, whatever the lifetime of the instance or the shell
-- (`portcullis keys rotate`) that prunes: each used to cut at its own TTL, so one configured
-- shorter than the servers deleted keys whose tokens were still valid. Keys from before this
-- migration were loaded by instances whose TTL is not known here: they take the longest a
-- configuration allows (24 h TTL, 5 m skew) until they go. Adding a column with a constant
-- default rewrites nothing; the table holds a handful of rows.
ALTER TABLE signing_keys ADD COLUMN token_lifetime interval NOT NULL DEFAULT interval '24 hours 5 minutes';
ALTER TABLE signing_keys ALTER COLUMN token_lifetime SET DEFAULT interval '0';

-- +goose Down
ALTER TABLE signing_keys DROP COLUMN token_lifetime;
