-- +goose Up
-- A live session's spent refresh tokens are purged once each would have expired anyway (see
-- sessions.Service.PurgeSpent): a session refreshed every 15 minutes for its 90 days would
-- otherwise keep ~8,600 rows. spent_at grows with the insertion order, so a BRIN index finds
-- the old ones for the cost of a few pages, and adds next to nothing to a refresh.
CREATE INDEX spent_refresh_tokens_spent_at_idx ON spent_refresh_tokens USING brin (spent_at);

-- +goose Down
DROP INDEX spent_refresh_tokens_spent_at_idx;
