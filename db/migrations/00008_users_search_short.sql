-- +goose NO TRANSACTION
-- +goose Up
-- The admin list's `q` of one or two characters (or any q from which pg_trgm draws no trigram)
-- could not use users_search_trgm_idx: a rare one ("zq") walked every user, ~190 ms at 1,000,000.
-- This index holds the trigrams of search with each character written three times, where a
-- character is a trigram of its own ("zzz") and two adjacent ones are two ("zzq", "zqq"): q of
-- any length then has trigrams, tripled the same way (users.List). Words still end at
-- non-alphanumerics as in pg_trgm, so "r " is asked for as "rrr" at a word's end. users.List
-- uses it only for a q whose tripled trigrams are rare by the statistics below: for a common one
-- walking a sort index finds a page sooner, and the expression costs ~5 us a row to recheck.
-- Built CONCURRENTLY (users_search is written by every registration and profile change); a
-- build that failed half-way leaves an invalid index of this name behind, dropped first.
DROP INDEX CONCURRENTLY IF EXISTS users_search_tripled_idx;
CREATE INDEX CONCURRENTLY users_search_tripled_idx ON users_search
    USING gin (regexp_replace(search, '(.)', '\1\1\1', 'g') gin_trgm_ops) WITH (fastupdate = off);
-- How many users hold each common tripled trigram, kept by ANALYZE (as users_search_trgm_stats).
CREATE STATISTICS IF NOT EXISTS users_search_tripled_stats
    ON (show_trgm(regexp_replace(search, '(.)', '\1\1\1', 'g'))) FROM users_search;
ANALYZE users_search;

-- +goose Down
DROP STATISTICS IF EXISTS users_search_tripled_stats;
DROP INDEX CONCURRENTLY IF EXISTS users_search_tripled_idx;
