-- name: InsertAuditEvent :exec
INSERT INTO audit_events (id, occurred_at, actor_id, action, target_type, target_id, outcome, ip_address, user_agent, request_id, detail)
VALUES (@id, @occurred_at, @actor_id, @action, @target_type, @target_id, @outcome, @ip_address, @user_agent, @request_id, @detail);

-- name: PurgeAuditEvents :execrows
-- Deletes up to batch_size events recorded before recorded_before, oldest first (found through
-- audit_events_occurred_idx).
DELETE FROM audit_events
WHERE id IN (
    SELECT e.id FROM audit_events e
    WHERE e.occurred_at < @recorded_before::timestamptz
    ORDER BY e.occurred_at
    LIMIT @batch_size::int
);

-- name: LockPasswordGuesses :exec
-- Serialises the reservations of one user's guesses (ReservePasswordGuess) across instances.
SELECT pg_advisory_xact_lock(hashtext('portcullis.password_guesses'), hashtext(@user_id::text));

-- name: PasswordGuessesSince :many
-- When the wrong password guesses of a user were made (at login, and of the current password at
-- a password change) since @since, and since the user's failures were last forgotten: a right
-- password at login or at a change, or a reset; with the guesses still in flight (reserved in
-- password_guesses_in_flight, not yet audited), which may yet be wrong. Oldest first, at most
-- @max_rows of the newest. Through audit_events_actor_idx and audit_events_target_idx.
WITH cleared AS (
    SELECT GREATEST(
        @since::timestamptz,
        (SELECT max(s.occurred_at) FROM audit_events s
         WHERE s.actor_id = @user_id::uuid AND s.occurred_at > @since::timestamptz
           AND s.action = 'user.login' AND s.outcome = 'success'),
        (SELECT max(c.occurred_at) FROM audit_events c
         WHERE c.target_type = 'user' AND c.target_id = (@user_id::uuid)::text AND c.occurred_at > @since::timestamptz
           AND c.action IN ('user.password_change', 'admin.password_reset') AND c.outcome = 'success')
    ) AS at
), guesses AS (
    (SELECT f.occurred_at FROM audit_events f, cleared
     WHERE f.target_type = 'user' AND f.target_id = (@user_id::uuid)::text AND f.occurred_at > cleared.at
       AND f.action IN ('user.login', 'user.password_change') AND f.outcome = 'failure'
       AND f.detail->>'reason' = 'wrong_password')
    UNION ALL
    (SELECT p.started_at FROM password_guesses_in_flight p, cleared
     WHERE p.user_id = @user_id::uuid AND p.started_at > cleared.at)
    ORDER BY 1 DESC
    LIMIT @max_rows::int
)
SELECT occurred_at FROM guesses ORDER BY occurred_at;

-- name: InsertPasswordGuessInFlight :exec
INSERT INTO password_guesses_in_flight (id, user_id, started_at) VALUES (@id, @user_id, @started_at);

-- name: DeletePasswordGuessInFlight :exec
DELETE FROM password_guesses_in_flight WHERE id = @id;

-- name: DeletePasswordGuessesInFlightBefore :exec
-- Rows left by instances that died while a guess was in flight, too old to count any more.
DELETE FROM password_guesses_in_flight WHERE user_id = @user_id AND started_at < @before;
