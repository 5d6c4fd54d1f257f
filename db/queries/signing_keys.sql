-- name: LockSigningKeys :exec
-- Serialises key rotation across instances for the rest of the transaction.
SELECT pg_advisory_xact_lock(hashtext('portcullis.signing_keys'));

-- name: InsertSigningKey :exec
INSERT INTO signing_keys (kid, algorithm, private_key, sealed, created_at, activates_at, token_lifetime)
VALUES (@kid, @algorithm, @private_key, @sealed, @created_at, @activates_at, @token_lifetime);

-- name: ListSigningKeys :many
-- Lists the keys, newest activation first, and raises the token lifetime of each listed to at
-- least @token_lifetime in the same snapshot: an instance records how long its
-- tokens live on every key before it can sign with any (see tokens.Service.reload).
WITH raised AS (
    UPDATE signing_keys SET token_lifetime = @token_lifetime WHERE token_lifetime < @token_lifetime
    RETURNING kid
)
SELECT k.* FROM signing_keys k ORDER BY k.activates_at DESC, k.kid DESC;

-- name: DeleteSigningKeysOutlived :execrows
-- Drops keys whose successor has been active for longer than a token they signed can live, so
-- never the newest active key.
DELETE FROM signing_keys k
WHERE EXISTS (SELECT 1 FROM signing_keys n
              WHERE n.activates_at > k.activates_at AND n.activates_at + k.token_lifetime <= @now);

-- name: ReadSigningKeys :many
-- Lists the keys, newest activation first, recording nothing: for a server that only reads (a
-- hot standby during a failover), where ListSigningKeys is refused (see tokens.Service.reload).
SELECT * FROM signing_keys ORDER BY activates_at DESC, kid DESC;
