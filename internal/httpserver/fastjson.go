package httpserver

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/users"
)

// userJSON is api.User with plain field types, for the hottest answer (GET /users/me).
// encoding/json writes it byte for byte as it writes api.User, whose Email runs a regular
// expression and whose FullName is a map on every encode: together a third of the answer's
// CPU. appendUserJSON writes the same bytes without reflection; userJSON stays its contract and
// its fallback. TestUserJSONIsAPIUser holds the two to the same bytes, and fails when the spec's User
// gains a field this one lacks.
type userJSON struct {
	CreatedAt  time.Time `json:"created_at"`
	Email      string    `json:"email"`
	FullName   *string   `json:"full_name"`
	ID         string    `json:"id"`
	IsActive   bool      `json:"is_active"`
	IsVerified bool      `json:"is_verified"`
	Role       string    `json:"role"`
	UpdatedAt  time.Time `json:"updated_at"`
	Username   string    `json:"username"`
}

func toUserJSON(u users.User) userJSON {
	return userJSON{
		CreatedAt: u.CreatedAt, Email: u.Email, FullName: u.FullName, ID: u.ID.String(),
		IsActive: u.IsActive, IsVerified: u.IsVerified, Role: u.Role, UpdatedAt: u.UpdatedAt, Username: u.Username,
	}
}

// meResponse is GetMe's 200, written as api.GetMe200JSONResponse would write it, with the
// user's ETag.
type meResponse struct{ user users.User }

var _ api.GetMeResponseObject = meResponse{}

func (r meResponse) VisitGetMeResponse(w http.ResponseWriter) error {
	buf := answerBuffers.Get().(*[]byte)
	defer answerBuffers.Put(buf)
	b, ok := appendUserJSON((*buf)[:0], r.user)
	if !ok { // a time encoding/json refuses: let it say so
		var err error
		if b, err = json.Marshal(toUserJSON(r.user)); err != nil {
			return err
		}
	}
	b = append(b, '\n')
	*buf = b // kept with its newline, so a grown buffer goes back to the pool whole
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Etag"] = []string{users.ETag(r.user)}
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(b)
	return err
}

// answerBuffers hold encoded answers until they are written (the ResponseWriter copies them).
var answerBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// appendUserJSON appends u as encoding/json writes userJSON (the same fields in the same order,
// the same escaping, times as time.Time.MarshalJSON writes them), without reflection. It
// returns false, having appended part of it, for a time MarshalJSON refuses (a year outside
// 0-9999).
func appendUserJSON(b []byte, u users.User) ([]byte, bool) {
	ok := true
	b = append(b, `{"created_at":`...)
	b, ok = appendTimeJSON(b, u.CreatedAt, ok)
	b = append(b, `,"email":`...)
	b = appendStringJSON(b, u.Email)
	b = append(b, `,"full_name":`...)
	if u.FullName == nil {
		b = append(b, "null"...)
	} else {
		b = appendStringJSON(b, *u.FullName)
	}
	b = append(b, `,"id":"`...)
	b = appendUUID(b, u.ID)
	b = append(b, `","is_active":`...)
	b = strconv.AppendBool(b, u.IsActive)
	b = append(b, `,"is_verified":`...)
	b = strconv.AppendBool(b, u.IsVerified)
	b = append(b, `,"role":`...)
	b = appendStringJSON(b, u.Role)
	b = append(b, `,"updated_at":`...)
	b, ok = appendTimeJSON(b, u.UpdatedAt, ok)
	b = append(b, `,"username":`...)
	b = appendStringJSON(b, u.Username)
	return append(b, '}'), ok
}

// appendTimeJSON appends t as time.Time.MarshalJSON does; ok turns false for a year it refuses.
// (It also refuses a zone offset of 24 hours or more, which time.FixedZone cannot make from
// PostgreSQL's, at most 15:59.)
func appendTimeJSON(b []byte, t time.Time, ok bool) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		ok = false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), ok
}

func appendUUID(b []byte, id uuid.UUID) []byte {
	const digits = "0123456789abcdef"
	for i, x := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, digits[x>>4], digits[x&0xf])
	}
	return b
}

// appendStringJSON appends s quoted as encoding/json quotes it (with its default HTML
// escaping): ", \\ and control bytes escaped, <, > and & as \u003c and the like, invalid UTF-8
// as \ufffd, U+2028 and U+2029 escaped.
func appendStringJSON(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
