-- name: CreateSession :exec
INSERT INTO user_sessions (id, user_id, refresh_token_hash, ip_address, user_agent, created_at, last_used_at, expires_at)
VALUES (@id, @user_id, @refresh_token_hash, @ip_address, @user_agent, @created_at, @created_at, @expires_at);

-- name: GetSessionState :one
-- What an authenticated request needs to know about its session, in one round trip.
SELECT s.id, s.user_id, s.expires_at, s.revoked_at, u.role, u.is_active AS user_is_active
FROM user_sessions s
JOIN users u ON u.id = s.user_id
WHERE s.id = @id;

-- name: RotateRefreshToken :one
-- Spends old_hash and installs new_hash in one statement and one round trip: of two racing
-- requests exactly one matches the row, the spent hash is recorded in its family, and the
-- refresh is audited.
-- Sliding expiry, capped at the session's absolute lifetime.
WITH rotated AS (
    UPDATE user_sessions s
    SET refresh_token_hash = @new_hash,
        refresh_generation = s.refresh_generation + 1,
        last_used_at       = @now,
        expires_at         = least(@expires_at::timestamptz, s.created_at + make_interval(secs => @max_lifetime_seconds::float8))
    FROM users u
    WHERE s.refresh_token_hash = @old_hash
      AND s.revoked_at IS NULL
      AND s.expires_at > @now
      AND u.id = s.user_id
      AND u.is_active
    RETURNING s.id, s.user_id, s.expires_at, u.role
), spent AS (
    INSERT INTO spent_refresh_tokens (token_hash, session_id, spent_at)
    SELECT @old_hash, rotated.id, @now FROM rotated
), audited AS (
    INSERT INTO audit_events (id, occurred_at, actor_id, action, target_type, target_id, outcome, ip_address, user_agent, request_id)
    SELECT @audit_id, @now, rotated.user_id, 'session.refresh', 'session', rotated.id::text, 'success',
           sqlc.narg(ip_address), sqlc.narg(user_agent), sqlc.narg(request_id)
    FROM rotated
)
SELECT id, user_id, expires_at, role FROM rotated;

-- name: GetSpentRefreshToken :one
SELECT t.session_id, t.spent_at, s.user_id, s.revoked_at
FROM spent_refresh_tokens t
JOIN user_sessions s ON s.id = t.session_id
WHERE t.token_hash = @token_hash;

-- name: RevokeSession :execrows
UPDATE user_sessions SET revoked_at = @now::timestamptz, revoked_reason = @reason
WHERE id = @id AND revoked_at IS NULL;

-- name: RevokeUserSession :execrows
UPDATE user_sessions SET revoked_at = @now::timestamptz, revoked_reason = @reason
WHERE id = @id AND user_id = @user_id AND revoked_at IS NULL AND expires_at > @now;

-- name: RevokeUserSessions :many
-- Revokes every live session of a user except keep_id (pass a nil UUID to keep none).
UPDATE user_sessions SET revoked_at = @now::timestamptz, revoked_reason = @reason
WHERE user_id = @user_id AND revoked_at IS NULL AND id <> @keep_id
RETURNING id;

-- name: ListActiveSessionsByUser :many
SELECT id, ip_address, user_agent, created_at, last_used_at, expires_at
FROM user_sessions
WHERE user_id = @user_id AND revoked_at IS NULL AND expires_at > @now
ORDER BY created_at DESC, id DESC;

-- name: ListLiveSessionIDsByUser :many
SELECT id FROM user_sessions WHERE user_id = @user_id AND revoked_at IS NULL AND expires_at > @now;

-- name: CountLiveSessions :one
SELECT count(*) FROM user_sessions WHERE revoked_at IS NULL AND expires_at > @now;
