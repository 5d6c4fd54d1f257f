-- name: CreateUser :one
INSERT INTO users (id, email, username, hashed_password, full_name, role, is_active, is_verified, created_at, updated_at)
VALUES (@id, @email, @username, @hashed_password, @full_name, @role, @is_active, @is_verified, @created_at, @created_at)
RETURNING *;

-- name: GetUserByID :one
SELECT * FROM users WHERE id = @id;

-- name: GetUserByEmail :one
-- The account of @email, an address in its normalised form (users.normalizeEmail), any letter
-- case; else the one stored as @as_typed, the address as typed in NFC only: an account
-- registered before domains were mapped through IDNA may hold a spelling of its domain that
-- is not the normalised one (fullwidth letters, a punycode label). One query whichever answers.
SELECT * FROM users WHERE lower(email) IN (lower(@email), lower(@as_typed))
ORDER BY lower(email) = lower(@email) DESC
LIMIT 1;

-- name: GetUserByUsername :one
SELECT * FROM users WHERE lower(username) = lower(@username);

-- name: UpdateUserProfile :one
-- Username changes when given; full_name changes only when set_full_name is true (null clears it).
UPDATE users
SET username   = coalesce(sqlc.narg(username), username),
    full_name  = CASE WHEN @set_full_name::boolean THEN sqlc.narg(full_name) ELSE full_name END,
    updated_at = @updated_at
WHERE id = @id
RETURNING *;

-- name: UpdateUserPassword :execrows
UPDATE users SET hashed_password = @hashed_password, updated_at = @updated_at WHERE id = @id;

-- name: UpgradeUserPassword :execrows
-- Replaces a hash with a stronger one of the same password, only if it is still the stored one:
-- a password change that came first is never overwritten with the old password. updated_at
-- stays: the hash is not part of the user the API shows, nor of its ETag.
UPDATE users SET hashed_password = @hashed_password
WHERE id = @id AND hashed_password = @old_hashed_password;

-- name: LockAdmins :exec
-- Serialises changes that could remove the last active admin, for the rest of the transaction.
SELECT pg_advisory_xact_lock(hashtext('portcullis.admins'));

-- name: CountActiveAdmins :one
SELECT count(*) FROM users WHERE role = 'admin' AND is_active;

-- name: GetUserForUpdate :one
SELECT * FROM users WHERE id = @id FOR UPDATE;

-- name: LockActingUser :one
-- The role and state of the account an act is done on behalf of, share-locked until the
-- transaction ends: a demotion, deactivation or deletion of that account waits for the act, or
-- the act sees it.
SELECT role, is_active FROM users WHERE id = @id FOR SHARE;

-- name: SessionIsLive :one
SELECT EXISTS (
    SELECT 1 FROM user_sessions
    WHERE id = @id AND user_id = @user_id AND revoked_at IS NULL AND expires_at > @now
);

-- name: UpdateUserByAdmin :one
-- Each field changes only when given; full_name changes only when set_full_name is true.
UPDATE users
SET role        = coalesce(sqlc.narg(role), role),
    is_active   = coalesce(sqlc.narg(is_active), is_active),
    is_verified = coalesce(sqlc.narg(is_verified), is_verified),
    username    = coalesce(sqlc.narg(username), username),
    full_name   = CASE WHEN @set_full_name::boolean THEN sqlc.narg(full_name) ELSE full_name END,
    updated_at  = @updated_at
WHERE id = @id
RETURNING *;

-- name: DeleteUser :many
-- Deletes a user (sessions cascade) and returns the ids of the sessions that were still live.
WITH live AS (
    SELECT s.id FROM user_sessions s
    WHERE s.user_id = @id AND s.revoked_at IS NULL AND s.expires_at > @now::timestamptz
), gone AS (
    DELETE FROM users WHERE users.id = @id RETURNING users.id
)
SELECT live.id FROM live, gone;
