-- +goose NO TRANSACTION
-- +goose Up
-- A live session's spent refresh tokens are purged once each would have expired anyway (see
-- sessions.Service.PurgeSpent): a session refreshed every 15 minutes for its 90 days would
-- otherwise keep ~8,600 rows. spent_at grows with the insertion order, so a BRIN index finds
-- the old ones for the cost of a few pages, and adds next to nothing to a refresh.
-- Built CONCURRENTLY: a plain build would hold off every refresh of the instances still serving
-- until it had read the whole table. A build that failed half-way leaves an invalid index of
-- this name behind, dropped first.
DROP INDEX CONCURRENTLY IF EXISTS spent_refresh_tokens_spent_at_idx;
CREATE INDEX CONCURRENTLY spent_refresh_tokens_spent_at_idx ON spent_refresh_tokens USING brin (spent_at);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS spent_refresh_tokens_spent_at_idx;
