package httpserver

import (
	"encoding/json"
	"net/http"
	"time"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/users"
)

// userJSON is api.User with plain field types, for the hottest answer (GET /users/me).
// encoding/json writes it byte for byte as it writes api.User, whose Email runs a regular
// expression and whose FullName is a map on every encode: together a third of the answer's
// CPU. TestUserJSONIsAPIUser holds the two to the same bytes, and fails when the spec's User
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
	b, err := json.Marshal(toUserJSON(r.user))
	if err != nil {
		return err
	}
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Etag"] = []string{users.ETag(r.user)}
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(append(b, '\n'))
	return err
}
