-- name: LockSigningKeys :exec
-- Serialises key rotation across instances for the rest of the transaction.
SELECT pg_advisory_xact_lock(hashtext('portcullis.signing_keys'));

-- name: InsertSigningKey :exec
INSERT INTO signing_keys (kid, algorithm, private_key, sealed, created_at, activates_at)
VALUES (@kid, @algorithm, @private_key, @sealed, @created_at, @activates_at);

-- name: ListSigningKeys :many
SELECT * FROM signing_keys ORDER BY activates_at DESC, kid DESC;

-- name: DeleteSigningKeysActivatedBefore :execrows
-- Drops keys whose successor activated before the cut-off, never the newest active key.
DELETE FROM signing_keys k
WHERE k.activates_at < @cutoff
  AND EXISTS (SELECT 1 FROM signing_keys n WHERE n.activates_at > k.activates_at AND n.activates_at <= @cutoff);
