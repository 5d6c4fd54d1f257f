package docs_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/portcullis/portcullis/internal/docs"
)

// apiCSP stands for the policy the server's global middleware sets on every response before the
// docs handlers run.
const apiCSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// newEcho is an Echo with the docs routes behind a middleware like the server's securityHeaders.
func newEcho() *echo.Echo {
	e := echo.New()
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("Cache-Control", "no-store")
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Content-Security-Policy", apiCSP)
			return next(c)
		}
	})
	docs.Register(e)
	return e
}

func do(t *testing.T, e *echo.Echo, method, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

// checkDocsHeaders asserts what every successful docs response carries.
func checkDocsHeaders(t *testing.T, target string, rec *httptest.ResponseRecorder, contentType, cacheControl string) {
	t.Helper()
	h := rec.Header()
	if got := h.Values("Content-Security-Policy"); len(got) != 1 || got[0] != docs.CSP {
		t.Errorf("%s: Content-Security-Policy %q, want exactly %q", target, got, docs.CSP)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", target, got)
	}
	if got := h.Get("Content-Type"); got != contentType {
		t.Errorf("%s: Content-Type %q, want %q", target, got, contentType)
	}
	if got := h.Get("Cache-Control"); got != cacheControl {
		t.Errorf("%s: Cache-Control %q, want %q", target, got, cacheControl)
	}
}

func TestCSP(t *testing.T) {
	want := "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	if docs.CSP != want {
		t.Fatalf("CSP = %q, want %q", docs.CSP, want)
	}
}

var (
	scriptTag  = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script\s*>`)
	srcAttr    = regexp.MustCompile(`(?i)\bsrc="([^"]+)"`)
	inlineAttr = regexp.MustCompile(`(?i)<[^>]*\s(on[a-z]+|style)\s*=`)
	remoteURL  = regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]`)
)

func TestPage(t *testing.T) {
	e := newEcho()
	for _, target := range []string{"/docs", "/docs/"} {
		rec := do(t, e, http.MethodGet, target, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", target, rec.Code)
		}
		checkDocsHeaders(t, target, rec, "text/html; charset=utf-8", "no-store")
		if rec.Header().Get("ETag") != "" {
			t.Errorf("GET %s: the page has an ETag", target)
		}
		body := rec.Body.String()

		var srcs []string
		for _, m := range scriptTag.FindAllStringSubmatch(body, -1) {
			if strings.TrimSpace(m[2]) != "" {
				t.Errorf("GET %s: inline script %q", target, m[2])
			}
			src := srcAttr.FindStringSubmatch(m[1])
			if src == nil {
				t.Errorf("GET %s: script without src: %q", target, m[0])
				continue
			}
			srcs = append(srcs, src[1])
		}
		if want := []string{"/docs/swagger-ui-bundle.js", "/docs/init.js"}; !slices.Equal(srcs, want) {
			t.Errorf("GET %s: scripts %q, want %q", target, srcs, want)
		}
		if n := strings.Count(strings.ToLower(body), "<script"); n != len(srcs) {
			t.Errorf("GET %s: %d script tags, %d well-formed", target, n, len(srcs))
		}
		if m := inlineAttr.FindString(body); m != "" {
			t.Errorf("GET %s: inline event handler or style attribute: %q", target, m)
		}
		if strings.Contains(strings.ToLower(body), "<style") {
			t.Errorf("GET %s: inline <style>", target)
		}
		if m := remoteURL.FindString(body); m != "" {
			t.Errorf("GET %s: refers to another origin: %q", target, m)
		}
		if !strings.Contains(body, `href="/docs/swagger-ui.css"`) {
			t.Errorf("GET %s: no stylesheet link", target)
		}
	}
}

// assetTypes are the names served under /docs/ and their Content-Type: exactly what
// tools/docs/update-assets.sh copies, plus init.js.
var assetTypes = map[string]string{
	"init.js":                          "text/javascript; charset=utf-8",
	"swagger-ui-bundle.js":             "text/javascript; charset=utf-8",
	"swagger-ui.css":                   "text/css; charset=utf-8",
	"favicon-32x32.png":                "image/png",
	"LICENSE":                          "text/plain; charset=utf-8",
	"NOTICE":                           "text/plain; charset=utf-8",
	"swagger-ui-bundle.js.LICENSE.txt": "text/plain; charset=utf-8",
}

func sourceOf(name string) string {
	if name == "init.js" {
		return name
	}
	return "assets/" + name
}

func TestAssetsOnDisk(t *testing.T) {
	entries, err := os.ReadDir("assets")
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	for n := range assetTypes {
		if n != "init.js" {
			want = append(want, n)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("assets/ holds %q, want %q: run tools/docs/update-assets.sh", got, want)
	}
}

func TestAssets(t *testing.T) {
	e := newEcho()
	for name, ct := range assetTypes {
		target := "/docs/" + name
		rec := do(t, e, http.MethodGet, target, nil)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d", target, rec.Code)
			continue
		}
		checkDocsHeaders(t, target, rec, ct, "public, max-age=86400")
		want, err := os.ReadFile(sourceOf(name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rec.Body.Bytes(), want) {
			t.Errorf("GET %s: body differs from %s", target, sourceOf(name))
		}
		if rec.Header().Get("Content-Encoding") != "" {
			t.Errorf("GET %s: encoded without Accept-Encoding", target)
		}
		etag := rec.Header().Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", target)
			continue
		}
		rec = do(t, e, http.MethodGet, target, http.Header{"If-None-Match": {etag}})
		if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
			t.Errorf("GET %s If-None-Match: %d with %d bytes", target, rec.Code, rec.Body.Len())
		}
		if got := rec.Header().Get("Content-Security-Policy"); got != docs.CSP {
			t.Errorf("GET %s If-None-Match: Content-Security-Policy %q", target, got)
		}
	}
}

func TestGzip(t *testing.T) {
	e := newEcho()
	for _, name := range []string{"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"} {
		target := "/docs/" + name
		plain := do(t, e, http.MethodGet, target, nil)
		rec := do(t, e, http.MethodGet, target, http.Header{"Accept-Encoding": {"br, gzip;q=0.8"}})
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Encoding") != "gzip" {
			t.Fatalf("GET %s gzip: %d, Content-Encoding %q", target, rec.Code, rec.Header().Get("Content-Encoding"))
		}
		checkDocsHeaders(t, target, rec, assetTypes[name], "public, max-age=86400")
		if !strings.Contains(rec.Header().Get("Vary"), "Accept-Encoding") {
			t.Errorf("GET %s: Vary %q", target, rec.Header().Get("Vary"))
		}
		if rec.Header().Get("ETag") == plain.Header().Get("ETag") {
			t.Errorf("GET %s: gzip and identity share an ETag", target)
		}
		if name == "swagger-ui-bundle.js" {
			t.Logf("%s: %d bytes, %d gzipped", name, plain.Body.Len(), rec.Body.Len())
		}
		zr, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, plain.Body.Bytes()) {
			t.Errorf("GET %s: gzip body differs", target)
		}
	}
	for _, ae := range []string{"gzip;q=0", "identity", "br", "*;q=0", "gzip;q=0, *"} {
		rec := do(t, e, http.MethodGet, "/docs/swagger-ui.css", http.Header{"Accept-Encoding": {ae}})
		if rec.Header().Get("Content-Encoding") != "" {
			t.Errorf("Accept-Encoding %q: got Content-Encoding %q", ae, rec.Header().Get("Content-Encoding"))
		}
	}
	if rec := do(t, e, http.MethodGet, "/docs/swagger-ui.css", http.Header{"Accept-Encoding": {"*"}}); rec.Header().Get("Content-Encoding") != "gzip" {
		t.Errorf("Accept-Encoding *: not gzipped")
	}
	// A PNG does not compress: served as is.
	if rec := do(t, e, http.MethodGet, "/docs/favicon-32x32.png", http.Header{"Accept-Encoding": {"gzip"}}); rec.Header().Get("Content-Encoding") != "" {
		t.Errorf("favicon gzipped")
	}
}

func TestHead(t *testing.T) {
	e := newEcho()
	for _, target := range []string{"/docs", "/docs/", "/docs/swagger-ui.css"} {
		rec := do(t, e, http.MethodHead, target, nil)
		if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
			t.Errorf("HEAD %s: %d with %d bytes", target, rec.Code, rec.Body.Len())
		}
		if got := rec.Header().Get("Content-Security-Policy"); got != docs.CSP {
			t.Errorf("HEAD %s: Content-Security-Policy %q", target, got)
		}
	}
}

func TestUnknownAsset(t *testing.T) {
	e := newEcho()
	for _, target := range []string{
		"/docs/nope.js",
		"/docs/index.html",
		"/docs/swagger-ui-bundle.js.map",
		"/docs/swagger-ui-standalone-preset.js",
		"/docs/assets/swagger-ui.css",
		"/docs/init.js/",
		"/docs/%2e%2e/docs.go",
		"/docs/..%2fdocs.go",
		"/docs//init.js",
	} {
		rec := do(t, e, http.MethodGet, target, nil)
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", target, rec.Code)
		}
		// An error is no docs page: it keeps the API's policy.
		if got := rec.Header().Get("Content-Security-Policy"); got != apiCSP {
			t.Errorf("GET %s: Content-Security-Policy %q, want the API's", target, got)
		}
	}
	if rec := do(t, e, http.MethodPost, "/docs/", nil); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /docs/: %d", rec.Code)
	}
}

func TestInitScript(t *testing.T) {
	b, err := os.ReadFile("init.js")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		`url: "/openapi.json"`,
		`dom_id: "#swagger-ui"`,
		`persistAuthorization: false`,
		`tryItOutEnabled: true`,
		`queryConfigEnabled: false`,
		`validatorUrl: null`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("init.js lacks %s", want)
		}
	}
	if m := remoteURL.FindString(s); m != "" {
		t.Errorf("init.js refers to another origin: %q", m)
	}
}

// TestStylesheetNeeds pins what CSP allows the stylesheet: images inlined as data: URLs, no
// font, no import. A Swagger UI upgrade that changes this needs the policy looked at again.
func TestStylesheetNeeds(t *testing.T) {
	css, err := os.ReadFile("assets/swagger-ui.css")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`url\(\s*["']?([^"')]{0,16})`).FindAllSubmatch(css, -1) {
		if url := string(m[1]); !strings.HasPrefix(url, "data:image/") {
			t.Errorf("swagger-ui.css loads %q: not covered by img-src 'self' data:", url)
		}
	}
	for _, rule := range []string{"@import", "@font-face"} {
		if bytes.Contains(css, []byte(rule)) {
			t.Errorf("swagger-ui.css has %s, which the policy does not allow", rule)
		}
	}
}

// TestPinnedVersion checks that the embedded bundle is the version tools/docs pins exactly.
func TestPinnedVersion(t *testing.T) {
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	b, err := os.ReadFile("../../tools/docs/package.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	version := pkg.Dependencies["swagger-ui-dist"]
	if !regexp.MustCompile(`^5\.\d+\.\d+$`).MatchString(version) {
		t.Fatalf("tools/docs/package.json pins swagger-ui-dist %q, want an exact 5.x version", version)
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	b, err = os.ReadFile("../../tools/docs/package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatal(err)
	}
	if got := lock.Packages["node_modules/swagger-ui-dist"].Version; got != version {
		t.Errorf("package-lock.json has swagger-ui-dist %q, package.json %q", got, version)
	}
	bundle, err := os.ReadFile("assets/swagger-ui-bundle.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bundle, []byte(`PACKAGE_VERSION:"`+version+`"`)) {
		t.Errorf("assets/swagger-ui-bundle.js is not swagger-ui-dist %s: run tools/docs/update-assets.sh", version)
	}
}
