package httpserver_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	api "github.com/portcullis/portcullis/gen/api"
)

// problemCodes are the problem codes the service's source can emit, found where they are made:
// domain sentinels (apperr.New, apperr.Invalidf), the hostile-JSON refusals, problems built by
// hand, the codes the error mapper picks itself and those it gives Echo's and net/http's errors.
var problemCodes = []*regexp.Regexp{
	regexp.MustCompile(`apperr\.New\(apperr\.\w+, "([a-z0-9-]+)"`),
	regexp.MustCompile(`New\(Invalid, "([a-z0-9-]+)"`),
	regexp.MustCompile(`"(?:syntax|trailing-data|depth|duplicate-key|invalid-utf8|nul)": "([a-z0-9-]+)"`), // hostileJSON
	regexp.MustCompile(`Code: +"([a-z0-9-]+)"`),
	regexp.MustCompile(`code(?:, detail)? = (?:[\w.]+, )?"([a-z0-9-]+)"`),
	regexp.MustCompile(`return "([a-z0-9-]+)", "`),
	regexp.MustCompile(`status, code, detail = [\w.]+, "([a-z0-9-]+)"`),
	regexp.MustCompile(`http\.Status\w+: +"([a-z0-9-]+)"`), // statusCodes
}

// Every problem code the service can emit is documented in README.md's Errors section, where
// clients are told to branch on it.
func TestEveryProblemCodeIsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, errorsSection, ok := strings.Cut(string(readme), "\n### Errors\n")
	if !ok {
		t.Fatal("README.md has no Errors section")
	}
	errorsSection, _, _ = strings.Cut(errorsSection, "\n## ")
	codes := map[string]string{}
	err = filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, re := range problemCodes {
			for _, m := range re.FindAllStringSubmatch(string(src), -1) {
				codes[m[1]] = path
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) < 20 {
		t.Fatalf("found only %d codes: %v", len(codes), codes)
	}
	for code, where := range codes {
		if code == "error" { // the mapper's fallback for a status with no code of its own
			continue
		}
		if !strings.Contains(errorsSection, "`"+code+"`") {
			t.Errorf("code %q (%s) is not in README.md's Errors section", code, where)
		}
	}
}

// The spec counts a password's code points as sent; the service counts them after NFKC, so a
// password the spec admits can still be too long (or short): 400 with its own code, naming it.
func TestPasswordLengthCountsAfterNormalisation(t *testing.T) {
	in := start(t)
	name := "nfkc" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	r, err := in.client.RegisterUserWithResponse(context.Background(), api.RegisterUserJSONRequestBody{
		Email: api.Email(name + "@example.com"), Username: name, Password: strings.Repeat("\ufb03", 100), // "ﬃ": "ffi" in NFKC
	})
	if err != nil {
		t.Fatal(err)
	}
	wantField(t, wantProblem(t, r, r.Body, http.StatusBadRequest, "password-too-long"), "password")
}
