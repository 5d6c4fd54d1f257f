-- Addresses are stored with their domain mapped through IDNA (UTS #46) from now on
-- (users.normalizeEmail): its Unicode form, lower case. For a domain of ASCII only with no
-- punycode ("xn--") label the mapping is lower-casing its letters, which SQL does faithfully,
-- so such domains move to lower case here (one IDNA refuses, with "_" say, which new addresses
-- may not have, changes only letter case, which no lookup heeds). Local parts are left as they are. Letter case does
-- not count towards uniqueness (users_email_lower_key), so no two addresses can meet. updated_at
-- moves with the address, as every change of what the API shows moves it (the user's ETag).
-- Other domains (non-ASCII ones, fullwidth letters say, and punycode labels) need IDNA's tables
-- and punycode, which PostgreSQL lacks: they stay as stored and are still found at login by the
-- spelling stored (GetUserByEmail); SECURITY.md says what that leaves.
-- +goose Up
UPDATE users u SET email = left(u.email, length(u.email) - length(d.domain)) || lower(d.domain), updated_at = now()
FROM (SELECT id, substring(email FROM '@([^@]*)$') AS domain FROM users) d
WHERE u.id = d.id
  AND d.domain ~ '^[!-~]+$'           -- ASCII only, no space or control character
  AND d.domain ~ '[A-Z]'              -- with a letter to lower
  AND d.domain !~* '(^|\.)xn--';      -- and no punycode label, which maps to its Unicode form

-- +goose Down
-- Nothing to undo: domains in lower case are valid in either version.
SELECT 1;
