-- name: CreateUser :one
INSERT INTO users (id, email, username, hashed_password, full_name, role, is_active, is_verified, created_at, updated_at)
VALUES (@id, @email, @username, @hashed_password, @full_name, @role, @is_active, @is_verified, @created_at, @created_at)
RETURNING *;

-- name: GetUserByID :one
SELECT * FROM users WHERE id = @id;

-- name: GetUserByEmail :one
SELECT * FROM users WHERE lower(email) = lower(@email);

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
