package httpserver

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/users"
)

// GET /users/me's hand-typed answer is byte for byte the generated one, for users whose names
// hold what JSON must escape (HTML, U+2028, control bytes, invalid UTF-8), with and without a
// full name, in any time zone.
func TestUserJSONIsAPIUser(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	pieces := []string{"a", "Z", "0", "é", "日本", "<", ">", "&", "'", "\"", "\\", "\u2028", "\u2029", "\x00", "\x1f", "\x7f", "\xff", "\xe2\x82", "+", "=", "/", "{", " ", "\t", "🙂"}
	text := func(n int) string {
		var b bytes.Buffer
		for range n {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	locals := []string{"ada", "o'brien", "a&b", "x+tag", "émile", "日本", "a.b", "q=1", "a/b", "{x}"}
	zones := []*time.Location{time.UTC, time.FixedZone("", -9*3600-1800), time.FixedZone("X", 14*3600)}
	checked := 0
	for i := range 400 {
		email := locals[rng.IntN(len(locals))] + "@" + locals[rng.IntN(len(locals))] + ".example"
		if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
			continue // not an address registration would store
		}
		u := users.User{
			ID: uuid.New(), Email: email, Username: text(1 + rng.IntN(6)), Role: []string{"user", "admin"}[i%2],
			IsActive: rng.IntN(2) == 0, IsVerified: rng.IntN(2) == 0,
			CreatedAt: time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(zones[rng.IntN(len(zones))]),
			UpdatedAt: time.Unix(rng.Int64N(4e9), 0).In(zones[rng.IntN(len(zones))]),
		}
		if i%3 != 0 {
			name := text(rng.IntN(12))
			u.FullName = &name
		}
		if i == 1 {
			u.CreatedAt = time.Time{}
		}
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		generated := api.GetMe200JSONResponse{Body: toAPIUser(u), Headers: api.GetMe200ResponseHeaders{ETag: new(users.ETag(u))}}
		if err := generated.VisitGetMeResponse(want); err != nil {
			t.Fatalf("generated answer for %+v: %v", u, err)
		}
		if err := (meResponse{u}).VisitGetMeResponse(got); err != nil {
			t.Fatalf("fast answer for %+v: %v", u, err)
		}
		if got.Code != want.Code || !reflect.DeepEqual(got.Header(), want.Header()) || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
			t.Fatalf("for %+v:\nfast      %d %v %s\ngenerated %d %v %s", u, got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
		checked++
	}
	if checked < 100 {
		t.Fatalf("only %d users checked", checked)
	}

	// The same JSON names in the same order: a field added to the spec's User fails here even
	// while the comparison above would not see it (omitempty).
	tags := func(typ reflect.Type) (names []string) {
		for f := range typ.Fields() {
			names = append(names, f.Tag.Get("json"))
		}
		return names
	}
	if a, b := tags(reflect.TypeFor[api.User]()), tags(reflect.TypeFor[userJSON]()); !reflect.DeepEqual(a, b) {
		t.Fatalf("api.User's fields %q, userJSON's %q", a, b)
	}
}

// discardWriter is an http.ResponseWriter that keeps one header map and drops the body, so that
// BenchmarkMeResponse times the answer's own work.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkMeResponse: GET /users/me's answer as written now, against encoding/json on the
// plain-typed copy (how it was written before the appender; still the fallback).
func BenchmarkMeResponse(b *testing.B) {
	name := "Ada Lovelace"
	u := users.User{
		ID: uuid.New(), Email: "ada@example.com", Username: "ada", FullName: &name, Role: "user",
		IsActive: true, CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC(),
	}
	w := &discardWriter{h: make(http.Header)}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			body, err := json.Marshal(toUserJSON(u))
			if err != nil {
				b.Fatal(err)
			}
			w.h["Content-Type"] = []string{"application/json"}
			w.h["Etag"] = []string{users.ETag(u)}
			_, _ = w.Write(append(body, '\n'))
		}
	})
	b.Run("answer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := (meResponse{u}).VisitGetMeResponse(w); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A time encoding/json refuses (a year past 9999) fails the fast answer as it fails the
// generated one, instead of writing a date no client reads back.
func TestUserJSONRefusesWhatEncodingJSONRefuses(t *testing.T) {
	for _, at := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)} {
		u := users.User{ID: uuid.New(), Email: "a@b.example", Username: "a", Role: "user", CreatedAt: time.Now(), UpdatedAt: at}
		generated := api.GetMe200JSONResponse{Body: toAPIUser(u), Headers: api.GetMe200ResponseHeaders{ETag: new(users.ETag(u))}}
		if err := generated.VisitGetMeResponse(httptest.NewRecorder()); err == nil {
			t.Fatalf("generated answer for a user updated at %v: no error", at)
		}
		if err := (meResponse{u}).VisitGetMeResponse(httptest.NewRecorder()); err == nil {
			t.Fatalf("fast answer for a user updated at %v: no error", at)
		}
	}
}
