package portcullis_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/app"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/sdk/go/portcullis"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func serve(t *testing.T) string {
	t.Helper()
	a, err := app.New(context.Background(), testenv.Config(t), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(func() { srv.Close(); a.Close() })
	return srv.URL
}

func TestLoginCallAndTransparentRefresh(t *testing.T) {
	url := serve(t)
	ctx := context.Background()
	c, err := portcullis.New(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := c.API.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: "sdk@example.com", Username: "sdkuser", Password: "a long and unusual passphrase"})
	if err != nil || reg.JSON201 == nil {
		t.Fatalf("register: %v %s", err, reg.Body)
	}
	err = c.Login(ctx, "sdk@example.com", "not the password")
	var p *portcullis.Problem
	if !errors.As(err, &p) || p.Code != "invalid-credentials" || p.Status != 401 {
		t.Fatalf("wrong password: %v", err)
	}
	if err := c.Login(ctx, "sdk@example.com", "a long and unusual passphrase"); err != nil {
		t.Fatal(err)
	}
	me, err := c.API.GetMeWithResponse(ctx)
	if err != nil || me.JSON200 == nil || me.JSON200.Id != reg.JSON201.Id {
		t.Fatalf("me: %v %s", err, me.Body)
	}

	// The access token goes bad (as when it expires): the next calls refresh once and go on.
	before := c.Tokens()
	broken := before
	broken.AccessToken = "eyJhbGciOiJFZERTQSJ9.eyJ9.c2ln"
	c.SetTokens(broken)
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.API.GetMeWithResponse(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i] = r.StatusCode()
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("call %d after expiry: %d", i, s)
		}
	}
	after := c.Tokens()
	if after.RefreshToken == before.RefreshToken || after.SessionId != before.SessionId {
		t.Fatalf("tokens were not rotated within the same session: %+v", after)
	}

	// A revoked session is not papered over by refreshing.
	if r, err := c.API.LogoutWithResponse(ctx); err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("logout: %v %d", err, r.StatusCode())
	}
	r, err := c.API.GetMeWithResponse(ctx)
	if err != nil || r.StatusCode() != http.StatusUnauthorized {
		t.Fatalf("me after logout: %v %d", err, r.StatusCode())
	}
}
