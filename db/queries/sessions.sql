-- name: CreateSessionAudited :execrows
-- A new session and the audit event of its creation, in one statement: one round trip, one
-- implicit transaction (a statement in WITH that writes runs to completion, read or not).
-- The session opens only while its user is active and still has the password hash the login
-- verified: a password change or a deactivation that commits while the login hashes leaves no
-- session behind (0 rows). FOR SHARE waits for such a change in flight and reads its result;
-- one that comes after finds the session and revokes it.
WITH created AS (
    INSERT INTO user_sessions (id, user_id, refresh_token_hash, ip_address, user_agent, created_at, last_used_at, expires_at)
    SELECT @id::uuid, u.id, @refresh_token_hash::bytea, sqlc.narg(ip_address)::inet, sqlc.narg(user_agent)::text,
           @created_at::timestamptz, @created_at::timestamptz, @expires_at::timestamptz
    FROM users u
    WHERE u.id = @user_id AND u.is_active AND u.hashed_password = @verified_password_hash
    FOR SHARE
    RETURNING id
)
INSERT INTO audit_events (id, occurred_at, actor_id, action, target_type, target_id, outcome, ip_address, user_agent, request_id, detail)
SELECT @audit_id, @audit_occurred_at, @audit_actor_id, @audit_action, @audit_target_type, @audit_target_id,
       @audit_outcome, @audit_ip_address, @audit_user_agent, @audit_request_id, @audit_detail
FROM created;

-- name: GetSessionState :one
-- What an authenticated request needs to know about its session, in one round trip.
SELECT s.id, s.user_id, s.expires_at, s.revoked_at, u.role, u.is_active AS user_is_active
FROM user_sessions s
JOIN users u ON u.id = s.user_id
WHERE s.id = @id;

-- name: RotateRefreshTokens :many
-- Spends a batch of refresh tokens for their successors in one statement, one transaction and
-- one round trip (group commit: the requests that arrive while a batch runs share the next).
-- Of two racing requests with one token exactly one matches its session's row. Each spent hash
-- is recorded in its family, and each refresh is audited. The rows returned are the members
-- (by their 1-based ordinal i) whose token was a live session's current one.
-- Sliding expiry, capped at the session's absolute lifetime. Text arrays carry '' for NULL.
WITH arrays AS (
    -- Set-returning functions side by side in a select list advance together, row by row.
    SELECT generate_subscripts(@old_hashes::bytea[], 1) AS i,
           unnest(@old_hashes::bytea[]) AS old_hash, unnest(@new_hashes::bytea[]) AS new_hash,
           unnest(@audit_ids::uuid[]) AS audit_id, unnest(@ip_addresses::text[]) AS ip,
           unnest(@user_agents::text[]) AS user_agent, unnest(@request_ids::text[]) AS request_id
), input AS (
    SELECT arrays.i, arrays.old_hash, arrays.new_hash, arrays.audit_id, NULLIF(arrays.ip, '')::inet AS ip_address,
           NULLIF(arrays.user_agent, '') AS user_agent, NULLIF(arrays.request_id, '') AS request_id
    FROM arrays
), rotated AS (
    UPDATE user_sessions s
    SET refresh_token_hash = input.new_hash,
        refresh_generation = s.refresh_generation + 1,
        last_used_at       = @now,
        expires_at         = least(@expires_at::timestamptz, s.created_at + make_interval(secs => @max_lifetime_seconds::float8))
    FROM input, users u
    -- ANY makes the plan look each token up in the hash index: the planner cannot see how
    -- short the arrays are, and joined on input alone it hashes a scan of the whole table.
    WHERE s.refresh_token_hash = ANY (@old_hashes::bytea[])
      AND s.refresh_token_hash = input.old_hash
      AND s.revoked_at IS NULL
      AND s.expires_at > @now
      AND u.id = s.user_id
      AND u.is_active
    RETURNING input.i, input.old_hash, input.audit_id, input.ip_address, input.user_agent, input.request_id,
              s.id, s.user_id, s.expires_at, u.role
), spent AS (
    INSERT INTO spent_refresh_tokens (token_hash, session_id, spent_at)
    SELECT rotated.old_hash, rotated.id, @now FROM rotated
), audited AS (
    INSERT INTO audit_events (id, occurred_at, actor_id, action, target_type, target_id, outcome, ip_address, user_agent, request_id)
    SELECT rotated.audit_id, @now, rotated.user_id, 'session.refresh', 'session', rotated.id::text, 'success',
           rotated.ip_address, rotated.user_agent, rotated.request_id
    FROM rotated
)
SELECT rotated.i, rotated.id, rotated.user_id, rotated.expires_at, rotated.role FROM rotated;

-- name: GetSpentRefreshToken :one
SELECT t.session_id, t.spent_at, s.user_id, s.revoked_at
FROM spent_refresh_tokens t
JOIN user_sessions s ON s.id = t.session_id
WHERE t.token_hash = @token_hash;

-- name: RevokeSession :execrows
UPDATE user_sessions SET revoked_at = @now::timestamptz, revoked_reason = @reason
WHERE id = @id AND revoked_at IS NULL;

-- name: EndUnansweredSession :one
-- Ends session @id of a login whose insert got no answer, whatever became of that insert: a row
-- that is there is revoked, one still being written is waited for and revoked, and in place of
-- one not written yet goes a revoked placeholder with the insert's id and refresh token hash, on
-- which that insert, should it still arrive, fails (it opens nothing and records nothing).
-- Returns whether a live session ended: false for a placeholder (it expires as it is written) and
-- no row at all for a session already revoked.
INSERT INTO user_sessions AS s (id, user_id, refresh_token_hash, created_at, last_used_at, expires_at, revoked_at, revoked_reason)
VALUES (@id, @user_id, @refresh_token_hash, @now::timestamptz, @now::timestamptz, @now::timestamptz, @now::timestamptz, @reason)
ON CONFLICT (id) DO UPDATE SET revoked_at = excluded.revoked_at, revoked_reason = excluded.revoked_reason
WHERE s.revoked_at IS NULL
RETURNING s.expires_at > @now::timestamptz AS ended;

-- name: RevokeUserSession :one
-- Revokes one session of a user and counts it (1) when it was live. One that has expired by @now
-- is revoked too but not counted: a refresh whose clock read a moment earlier (queued before this,
-- or on an instance whose clock runs behind) could otherwise still slide its expiry on and bring
-- it back. A refresh in flight is waited for, and its outcome is what is revoked and counted.
WITH ended AS (
    UPDATE user_sessions SET revoked_at = @now::timestamptz, revoked_reason = @reason
    WHERE id = @id AND user_id = @user_id AND revoked_at IS NULL
    RETURNING expires_at
)
SELECT count(*) FROM ended WHERE expires_at > @now::timestamptz;

-- name: LockSessionOwnerRole :one
-- The role of the user whose sessions staff act on, share-locked until the transaction ends: a
-- role change waits for the act, so the role checked is still the user's when it lands.
SELECT role FROM users WHERE id = @id FOR SHARE;

-- name: RevokeUserSessions :many
-- Revokes every session of a user not yet revoked except keep_id (pass a nil UUID to keep none),
-- and returns the ids of those that were live. One that has expired by @now is revoked too but
-- not returned (counting it would put a revocation that did not happen in the audit trail): left
-- as it was, a refresh whose clock read a moment earlier (queued before this, or on an instance
-- whose clock runs behind) could still slide its expiry on and bring it back after this.
WITH ended AS (
    UPDATE user_sessions SET revoked_at = @now::timestamptz, revoked_reason = @reason
    WHERE user_id = @user_id AND revoked_at IS NULL AND id <> @keep_id
    RETURNING id, expires_at
)
SELECT ended.id FROM ended WHERE ended.expires_at > @now::timestamptz;

-- name: ListActiveSessionsByUser :many
SELECT id, ip_address, user_agent, created_at, last_used_at, expires_at
FROM user_sessions
WHERE user_id = @user_id AND revoked_at IS NULL AND expires_at > @now
ORDER BY created_at DESC, id DESC;

-- name: ListLiveSessionIDsByUser :many
SELECT id FROM user_sessions WHERE user_id = @user_id AND revoked_at IS NULL AND expires_at > @now;

-- name: CountLiveSessions :one
SELECT count(*) FROM user_sessions WHERE revoked_at IS NULL AND expires_at > @now;

-- name: PurgeEndedSessions :execrows
-- Deletes up to batch_size sessions that ended (expired or revoked) before ended_before, and
-- with them their spent tokens (ON DELETE CASCADE). The audit trail keeps their history.
DELETE FROM user_sessions
WHERE id IN (
    SELECT s.id FROM user_sessions s
    WHERE s.expires_at < @ended_before::timestamptz OR s.revoked_at < @ended_before::timestamptz
    LIMIT @batch_size::int
);

-- name: PurgeSpentRefreshTokens :execrows
-- Deletes up to batch_size spent refresh tokens spent before spent_before, whatever their
-- session's state (see sessions.Service.PurgeSpent).
DELETE FROM spent_refresh_tokens
WHERE token_hash IN (
    SELECT t.token_hash FROM spent_refresh_tokens t
    WHERE t.spent_at < @spent_before::timestamptz
    LIMIT @batch_size::int
);
