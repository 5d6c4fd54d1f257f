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
