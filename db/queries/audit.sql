-- name: InsertAuditEvent :exec
INSERT INTO audit_events (id, occurred_at, actor_id, action, target_type, target_id, outcome, ip_address, user_agent, request_id, detail)
VALUES (@id, @occurred_at, @actor_id, @action, @target_type, @target_id, @outcome, @ip_address, @user_agent, @request_id, @detail);
