-- Addresses are stored in Unicode NFC from now on (users.normalizeEmail). Existing ones move
-- to NFC, except one whose NFC form another account already holds: that pair was registered
-- as two accounts, and merging them is for an operator to decide (SECURITY.md).
-- +goose Up
UPDATE users u SET email = normalize(u.email, NFC)
WHERE u.email IS NOT NFC NORMALIZED
  AND NOT EXISTS (SELECT 1 FROM users o WHERE o.id <> u.id AND lower(o.email) = lower(normalize(u.email, NFC)));

-- +goose Down
-- Nothing to undo: NFC addresses are valid in either version.
SELECT 1;
