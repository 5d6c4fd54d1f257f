package httpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sync/singleflight"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/tokens"
)

// readyTimeout bounds each dependency check of /readyz.
const readyTimeout = time.Second

// opsHandler serves the "operations" tag.
type opsHandler struct {
	tokens   *tokens.Service
	ready    map[string]Pinger
	degrades map[string]Pinger   // reported by name, never failing readiness (Deps.Degrades)
	serving  Pinger              // asked by every probe itself (Deps.Serving)
	checking *singleflight.Group // one readiness check of ready at a time, shared
	specJSON map[string]any
	specYAML []byte
}

func (h opsHandler) GetHealth(context.Context, api.GetHealthRequestObject) (api.GetHealthResponseObject, error) {
	return api.GetHealth200JSONResponse{Status: api.HealthStatusOk}, nil
}

func (h opsHandler) GetReadiness(ctx context.Context, _ api.GetReadinessRequestObject) (api.GetReadinessResponseObject, error) {
	// /readyz is not rate limited (unlessProbe), so the probes that arrive while a check runs
	// share it rather than each pinging PostgreSQL and Redis. The check runs free of the
	// probe's cancellation, so a probe that hangs up does not fail the others'.
	v, _, _ := h.checking.Do("", func() (any, error) { return h.check(context.WithoutCancel(ctx)), nil })
	r := v.(readiness)
	// The shared result is only read: this probe's answer is a copy, with the drain flag.
	checks, down := maps.Clone(r.checks), slices.Clip(r.down)
	if h.serving != nil {
		if err := h.serving.Ping(ctx); err != nil {
			checks["server"], down = "unavailable", append(down, "server")
		} else {
			checks["server"] = "ok"
		}
	}
	if len(down) == 0 {
		return api.GetReadiness200JSONResponse{Status: "ok", Checks: checks}, nil
	}
	detail := fmt.Sprintf("not ready: %v unavailable", down)
	return api.GetReadiness503ApplicationProblemPlusJSONResponse{
		Type: problemBase + "not-ready", Title: http.StatusText(http.StatusServiceUnavailable), Status: http.StatusServiceUnavailable,
		Code: "not-ready", Detail: &detail, Instance: ptr("/readyz"), RequestId: ptr(requestID(ctx)), Checks: &checks,
	}, nil
}

// readiness is the outcome of one check of every dependency: each one's state by name, and the
// names of those down.
type readiness struct {
	checks map[string]string
	down   []string
}

// check pings every dependency, each for at most readyTimeout.
func (h opsHandler) check(ctx context.Context) readiness {
	r := readiness{checks: make(map[string]string, len(h.ready)+len(h.degrades))}
	ping := func(name string, p Pinger) bool {
		cctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		if err := p.Ping(cctx); err != nil {
			r.checks[name] = "unavailable"
			return false
		}
		r.checks[name] = "ok"
		return true
	}
	for name, p := range h.ready {
		if !ping(name, p) {
			r.down = append(r.down, name)
		}
	}
	for name, p := range h.degrades {
		ping(name, p) // reported, never failing the check
	}
	return r
}

func (h opsHandler) GetJWKS(context.Context, api.GetJWKSRequestObject) (api.GetJWKSResponseObject, error) {
	raw, err := json.Marshal(h.tokens.JWKS())
	if err != nil {
		return nil, fmt.Errorf("marshal jwks: %w", err)
	}
	var set api.JWKS
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("convert jwks: %w", err)
	}
	return api.GetJWKS200JSONResponse{Body: set, Headers: api.GetJWKS200ResponseHeaders{CacheControl: ptr(jwksCacheControl)}}, nil
}

func (h opsHandler) GetOpenAPIJSON(context.Context, api.GetOpenAPIJSONRequestObject) (api.GetOpenAPIJSONResponseObject, error) {
	return api.GetOpenAPIJSON200JSONResponse(h.specJSON), nil
}

func (h opsHandler) GetOpenAPIYAML(context.Context, api.GetOpenAPIYAMLRequestObject) (api.GetOpenAPIYAMLResponseObject, error) {
	return api.GetOpenAPIYAML200ApplicationyamlResponse{Body: bytes.NewReader(h.specYAML), ContentLength: int64(len(h.specYAML))}, nil
}

// jwksCacheControl lets verifiers cache the JWKS for config.JWKSMaxAge, which a new key's
// PORTCULLIS_JWKS_PREPUBLISH lead covers.
var jwksCacheControl = "public, max-age=" + strconv.Itoa(int(config.JWKSMaxAge.Seconds()))
