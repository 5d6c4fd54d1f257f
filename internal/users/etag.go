package users

import (
	"strconv"
	"strings"
)

// ETag is the entity tag of u as the API shows it, a strong one: every write of a user sets
// updated_at, which is part of what the API shows, so the tag changes with every change.
func ETag(u User) string {
	return `"` + strconv.FormatInt(u.UpdatedAt.UnixMicro(), 36) + `"`
}

// ifMatch reports whether the If-Match field cond (nil: none was sent) holds for u, as RFC 9110
// 13.1.1 has it: "*", or a list of entity tags one of which is u's by strong comparison (a weak
// tag, W/"...", never matches). Anything else, malformed or not, does not match.
func ifMatch(cond *string, u User) bool {
	if cond == nil {
		return true
	}
	tag := ETag(u)
	for m := range strings.SplitSeq(*cond, ",") {
		if m = strings.TrimSpace(m); m == "*" || m == tag {
			return true
		}
	}
	return false
}
