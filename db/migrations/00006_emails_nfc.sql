-- Addresses are stored in Unicode NFC from now on (users.normalizeEmail). Existing ones move to
-- NFC, one account per NFC form: when the form is already some account's, or several spellings
-- fold to it, only that account or the oldest spelling moves. The others were registered as
-- separate accounts and stay so, reachable by username, for an operator to merge (SECURITY.md).
-- normalize() needs a UTF8 database; any other holds no address that folds.
-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    IF current_setting('server_encoding') <> 'UTF8' THEN
        RETURN;
    END IF;
    UPDATE users u SET email = c.nfc
    FROM (
        SELECT id, normalize(email, NFC) AS nfc,
               row_number() OVER (PARTITION BY lower(normalize(email, NFC))
                                  ORDER BY email IS NFC NORMALIZED DESC, created_at, id) AS rank
        FROM users
    ) c
    WHERE u.id = c.id AND c.rank = 1 AND u.email IS NOT NFC NORMALIZED;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- Nothing to undo: NFC addresses are valid in either version.
SELECT 1;
