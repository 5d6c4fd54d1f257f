// Package docs serves an interactive reference of the API at /docs: Swagger UI, embedded in the
// binary from the npm package swagger-ui-dist (see tools/docs), pointed at the service's own
// /openapi.json. Nothing is loaded from another origin.
//
// The page is index.html and init.js, both this package's own: the dist's index.html starts
// Swagger UI from an inline script, which the page's Content-Security-Policy would have to allow.
// Every docs response replaces the API's policy with CSP, the least this page needs; errors
// (an unknown asset is a 404) keep the policy the server set for the API.
package docs

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// CSP is the Content-Security-Policy of every docs response, and the least that Swagger UI needs:
//
//   - script-src 'self': swagger-ui-bundle.js and init.js, no inline script, no eval.
//   - style-src 'self': swagger-ui.css. React sets the style of elements through the DOM, which
//     the policy does not govern, so no 'unsafe-inline'.
//   - img-src 'self' data:: the favicon, and the icons that swagger-ui.css inlines as data: URLs.
//   - connect-src 'self': /openapi.json, and the requests of "Try it out".
//   - no font-src: swagger-ui.css loads no font.
//   - form-action 'none': the Authorize dialog is a form that never submits.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// Cache-Control of the page (never cached: it is small and names the assets) and of the assets
// (a day; their ETag revalidates them afterwards).
const (
	pageCacheControl  = "no-store"
	assetCacheControl = "public, max-age=86400"
)

// Paths the page is served at. Both serve the same page, with no redirect: every URL in it is
// absolute, so it works at either.
const (
	Path      = "/docs"
	assetBase = Path + "/"
)

//go:embed assets
var assetFS embed.FS

//go:embed index.html
var indexHTML []byte

//go:embed init.js
var initJS []byte

// file is one response body, ready to serve.
type file struct {
	body         []byte
	contentType  string
	cacheControl string
	etag         string
	gzipped      func() []byte // nil when compression would not pay off
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".png":  "image/png",
	".txt":  "text/plain; charset=utf-8",
	"":      "text/plain; charset=utf-8", // LICENSE, NOTICE
}

func newFile(name string, body []byte, cacheControl string) *file {
	ct, ok := contentTypes[path.Ext(name)]
	if !ok {
		panic("docs: no content type for " + name)
	}
	sum := sha256.Sum256(body)
	f := &file{body: body, contentType: ct, cacheControl: cacheControl, etag: hex.EncodeToString(sum[:16])}
	if strings.HasPrefix(ct, "text/") && len(body) >= 1024 {
		f.gzipped = sync.OnceValue(func() []byte {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			_, _ = zw.Write(body)
			_ = zw.Close()
			return buf.Bytes()
		})
	}
	return f
}

var (
	page   = newFile("index.html", indexHTML, pageCacheControl)
	assets = loadAssets()
)

// loadAssets indexes the embedded files by the name they are served under: /docs/NAME.
func loadAssets() map[string]*file {
	m := map[string]*file{"init.js": newFile("init.js", initJS, assetCacheControl)}
	entries, err := fs.ReadDir(assetFS, "assets")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		body, err := assetFS.ReadFile("assets/" + e.Name())
		if err != nil {
			panic(err)
		}
		m[e.Name()] = newFile(e.Name(), body, assetCacheControl)
	}
	return m
}

// Register adds the docs routes to e: GET and HEAD of /docs and /docs/ (the page) and of
// /docs/NAME (an asset; an unknown NAME is echo.ErrNotFound, for e's error handler).
func Register(e *echo.Echo) {
	methods := []string{http.MethodGet, http.MethodHead}
	e.Match(methods, Path, servePage)
	e.Match(methods, assetBase, servePage)
	e.Match(methods, assetBase+"*", serveAsset)
}

func servePage(c echo.Context) error { return serve(c, page) }

func serveAsset(c echo.Context) error {
	f, ok := assets[c.Param("*")]
	if !ok {
		return echo.ErrNotFound
	}
	return serve(c, f)
}

func serve(c echo.Context, f *file) error {
	w, r := c.Response(), c.Request()
	h := w.Header()
	apiCSP, apiCache := h.Get("Content-Security-Policy"), h.Get("Cache-Control")
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	body, etag, gzipped := f.body, f.etag, false
	if f.gzipped != nil {
		h.Add(echo.HeaderVary, echo.HeaderAcceptEncoding)
		if acceptsGzip(r.Header.Get(echo.HeaderAcceptEncoding)) {
			body, etag, gzipped = f.gzipped(), etag+"-gzip", true
		}
	}
	// The representation's headers, which a refusal of ServeContent's removes.
	represent := func() {
		h.Set(echo.HeaderContentType, f.contentType)
		h.Set("Cache-Control", f.cacheControl)
		if gzipped {
			h.Set(echo.HeaderContentEncoding, "gzip")
		}
		if f.cacheControl != pageCacheControl {
			h.Set("ETag", `"`+etag+`"`)
		}
	}
	represent()
	// ServeContent answers If-None-Match with 304, ranges with 206, and HEAD without a body.
	ref := &refusal{ResponseWriter: w}
	http.ServeContent(ref, r, "", time.Time{}, bytes.NewReader(body))
	if ref.status == http.StatusRequestedRangeNotSatisfiable && h.Get("Content-Range") == "" {
		// A Range ServeContent cannot parse (another unit, bytes=9-0) is refused like one past
		// the end, but with no Content-Range. RFC 9110 (14.2) has it ignored: the whole file.
		r.Header.Del("Range")
		represent()
		ref = &refusal{ResponseWriter: w}
		http.ServeContent(ref, r, "", time.Time{}, bytes.NewReader(body))
	}
	if ref.status == 0 {
		return nil
	}
	// A refusal is an error like any other, for e's error handler: no docs page, so it is under
	// the API's headers again, with no validator or coding of the file's (Content-Range stays:
	// a 416 needs it).
	h.Set("Content-Security-Policy", apiCSP)
	h.Set("Cache-Control", apiCache)
	for _, k := range []string{echo.HeaderContentType, "ETag", echo.HeaderContentEncoding} {
		h.Del(k)
	}
	return echo.NewHTTPError(ref.status, refusals[ref.status])
}

// refusals are the errors http.ServeContent answers with, and what the problem's detail says.
var refusals = map[int]string{
	http.StatusRequestedRangeNotSatisfiable: "the requested range lies outside the file",
	http.StatusPreconditionFailed:           "the file does not match If-Match",
}

// refusal passes a response through to ResponseWriter except an error status, which it records
// in status, and the text/plain body ServeContent writes after it, which it drops.
type refusal struct {
	http.ResponseWriter
	status int
}

func (r *refusal) WriteHeader(code int) {
	if code >= http.StatusBadRequest {
		r.status = code
		return
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *refusal) Write(b []byte) (int, error) {
	if r.status != 0 {
		return len(b), nil
	}
	return r.ResponseWriter.Write(b)
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip (RFC 9110, 12.5.3).
func acceptsGzip(header string) bool {
	gz, star := -1.0, -1.0
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		switch strings.ToLower(strings.TrimSpace(coding)) {
		case "gzip", "x-gzip":
			gz = q
		case "*":
			star = q
		}
	}
	if gz >= 0 {
		return gz > 0
	}
	return star > 0
}
