package strictjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func nested(depth int, open, close, inner string) string {
	return strings.Repeat(open, depth) + inner + strings.Repeat(close, depth)
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		body     string
		wantKind string // "" means accepted
		wantPath string
	}{
		{name: "object", body: `{"email":"ada@example.com","password":"hunter2","full_name":null}`},
		{name: "nested object and array", body: `{"items":[{"name":"a","qty":1},{"name":"b","qty":2.5e3}],"ok":true}`},
		{name: "empty object", body: `{}`},
		{name: "empty array", body: `[]`},
		{name: "empty key", body: `{"":1,"a":{"":2}}`},
		{name: "string", body: `"x"`},
		{name: "number", body: `-12.5e-3`},
		{name: "big number", body: `123456789012345678901234567890`},
		{name: "true", body: `true`},
		{name: "null", body: `null`},
		{name: "surrounding whitespace", body: " \t\r\n{\"a\": [1, 2]}\n\n"},
		{name: "same key in sibling objects", body: `[{"a":1},{"a":2}]`},
		{name: "same key at different depths", body: `{"a":{"a":{"a":1}}}`},
		{name: "many distinct keys", body: manyKeys(100, false)},
		{name: "surrogate pair", body: `{"smile":"\ud83d\ude00"}`},
		{name: "surrogate pair in key", body: `{"\uD83D\uDE00":1}`},
		{name: "escaped backslash before u0000", body: `{"path":"C:\\u0000"}`},
		{name: "escaped backslash before ud800", body: `["\\ud800"]`},
		{name: "raw U+FFFD", body: `"` + "\uFFFD" + `"`},
		{name: "escaped U+FFFD", body: `"\ufffd"`},
		{name: "other escapes", body: `"\"\\\/\b\f\n\r\t\u0001\u00e9"`},
		{name: "depth 32 arrays", body: nested(MaxDepth, "[", "]", "")},
		{name: "depth 32 objects", body: nested(MaxDepth, `{"k":`, "}", "1")},

		{name: "empty body", body: ``, wantKind: KindSyntax, wantPath: "body"},
		{name: "only whitespace", body: " \n", wantKind: KindSyntax, wantPath: "body"},
		{name: "truncated object", body: `{"a":1`, wantKind: KindSyntax, wantPath: "body"},
		{name: "truncated string", body: `{"a":"b`, wantKind: KindSyntax, wantPath: "body"},
		{name: "trailing comma", body: `[1,2,]`, wantKind: KindSyntax, wantPath: "body"},
		{name: "missing colon", body: `{"a" 1}`, wantKind: KindSyntax, wantPath: "body"},
		{name: "unquoted key", body: `{a:1}`, wantKind: KindSyntax, wantPath: "body"},
		{name: "mismatched close", body: `{"a":[1}`, wantKind: KindSyntax, wantPath: "body"},
		{name: "single quotes", body: `{'a':1}`, wantKind: KindSyntax, wantPath: "body"},
		{name: "bad escape", body: `"\x41"`, wantKind: KindSyntax, wantPath: "body"},
		{name: "short unicode escape", body: `"\u12"`, wantKind: KindSyntax, wantPath: "body"},
		{name: "raw control character", body: "\"a\x01b\"", wantKind: KindSyntax, wantPath: "body"},
		{name: "raw NUL", body: "\"a\x00b\"", wantKind: KindSyntax, wantPath: "body"},
		{name: "byte order mark", body: "\uFEFF{}", wantKind: KindSyntax, wantPath: "body"},
		{name: "leading zero", body: `01`, wantKind: KindTrailingData, wantPath: "body"},
		{name: "NaN", body: `NaN`, wantKind: KindSyntax, wantPath: "body"},

		{name: "trailing garbage", body: `{"a":1}x`, wantKind: KindTrailingData, wantPath: "body"},
		{name: "two objects", body: `{"a":1} {"b":2}`, wantKind: KindTrailingData, wantPath: "body"},
		{name: "two scalars", body: `1 2`, wantKind: KindTrailingData, wantPath: "body"},
		{name: "scalar then letter", body: `1x`, wantKind: KindTrailingData, wantPath: "body"},
		{name: "trailing close", body: `[1]]`, wantKind: KindTrailingData, wantPath: "body"},

		{name: "depth 33 arrays", body: nested(MaxDepth+1, "[", "]", ""), wantKind: KindDepth, wantPath: strings.Repeat("0.", MaxDepth-1) + "0"},
		{name: "depth 33 objects", body: nested(MaxDepth+1, `{"k":`, "}", "1"), wantKind: KindDepth, wantPath: strings.Repeat("k.", MaxDepth-1) + "k"},
		{name: "depth 10000", body: nested(10000, "[", "]", ""), wantKind: KindDepth, wantPath: strings.Repeat("0.", MaxDepth-1) + "0"},
		{name: "depth after siblings", body: `{"a":[1,2,` + nested(MaxDepth-1, "[", "]", "") + `]}`, wantKind: KindDepth, wantPath: "a.2" + strings.Repeat(".0", MaxDepth-2)},

		{name: "duplicate key", body: `{"a":1,"a":2}`, wantKind: KindDuplicateKey, wantPath: "a"},
		{name: "duplicate nested key", body: `{"a":{"b":1,"c":2,"b":3}}`, wantKind: KindDuplicateKey, wantPath: "a.b"},
		{name: "duplicate key in array element", body: `{"items":[{"n":1},{"n":1,"n":2}]}`, wantKind: KindDuplicateKey, wantPath: "items.1.n"},
		{name: "duplicate after unescaping", body: `{"a":1,"\u0061":2}`, wantKind: KindDuplicateKey, wantPath: "a"},
		{name: "duplicate empty key", body: `{"":1,"":2}`, wantKind: KindDuplicateKey, wantPath: ""},
		{name: "duplicate among many keys", body: manyKeys(100, true), wantKind: KindDuplicateKey, wantPath: "k0"},
		{name: "duplicate after nested object", body: `{"a":{"x":1},"b":2,"a":3}`, wantKind: KindDuplicateKey, wantPath: "a"},

		{name: "invalid UTF-8", body: "{\"a\":\"\xff\"}", wantKind: KindInvalidUTF8, wantPath: "body"},
		{name: "overlong UTF-8", body: "\"\xc0\xaf\"", wantKind: KindInvalidUTF8, wantPath: "body"},
		{name: "encoded surrogate", body: "\"\xed\xa0\x80\"", wantKind: KindInvalidUTF8, wantPath: "body"},
		{name: "lone high surrogate", body: `{"a":"\ud800"}`, wantKind: KindInvalidUTF8, wantPath: "a"},
		{name: "lone low surrogate", body: `["ok","x\uDC00y"]`, wantKind: KindInvalidUTF8, wantPath: "1"},
		{name: "high surrogate then text", body: `"\ud83dx"`, wantKind: KindInvalidUTF8, wantPath: "body"},
		{name: "high surrogate then non-surrogate escape", body: `"\ud83d\u0041"`, wantKind: KindInvalidUTF8, wantPath: "body"},
		{name: "two high surrogates", body: `"\ud83d\ud83d"`, wantKind: KindInvalidUTF8, wantPath: "body"},
		{name: "reversed pair", body: `"\ude00\ud83d"`, wantKind: KindInvalidUTF8, wantPath: "body"},
		{name: "high surrogate then escaped backslash", body: `"\ud83d\\ude00"`, wantKind: KindInvalidUTF8, wantPath: "body"},
		{name: "lone surrogate after pair", body: `"\ud83d\ude00\ud800"`, wantKind: KindInvalidUTF8, wantPath: "body"},
		{name: "lone surrogate in key", body: `{"x":{"\udfff":1}}`, wantKind: KindInvalidUTF8, wantPath: "x.\uFFFD"},

		{name: "NUL in string", body: `"\u0000"`, wantKind: KindNUL, wantPath: "body"},
		{name: "NUL in array element", body: `{"items":["x","a\u0000"]}`, wantKind: KindNUL, wantPath: "items.1"},
		{name: "NUL in key", body: `{"a":{"b\u0000":1}}`, wantKind: KindNUL, wantPath: "a.b\x00"},
		{name: "NUL after escaped backslash", body: `"\\\u0000"`, wantKind: KindNUL, wantPath: "body"},
		{name: "NUL in nested value", body: `{"user":{"full_name":"Ada\u0000"}}`, wantKind: KindNUL, wantPath: "user.full_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Check([]byte(tt.body))
			if tt.wantKind == "" {
				if err != nil {
					t.Fatalf("Check(%q) = %v, want nil", tt.body, err)
				}
				return
			}
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("Check(%q) = %v, want *Error", tt.body, err)
			}
			if got.Kind != tt.wantKind || got.Path != tt.wantPath {
				t.Errorf("Check(%q) (-want +got):\n-kind %q path %q\n+kind %q path %q (%v)", tt.body, tt.wantKind, tt.wantPath, got.Kind, got.Path, got)
			}
			if got.Detail == "" {
				t.Errorf("Check(%q) has an empty Detail", tt.body)
			}
		})
	}
}

// manyKeys is an object with n keys, past the point where seen keys move to a map; with dup,
// the first key comes again at the end.
func manyKeys(n int, dup bool) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		fmt.Fprintf(&b, `"k%d":%d,`, i, i)
	}
	if dup {
		b.WriteString(`"k0":0,`)
	}
	b.WriteString(`"end":true}`)
	return b.String()
}

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	err := Check([]byte(`{"a":{"b":1,"b":2}}`))
	want := `json duplicate-key at "a.b": key appears more than once in the object`
	if err == nil || err.Error() != want {
		t.Fatalf("Check() error = %v, want %s", err, want)
	}
}

// TestCheckLarge accepts 64 KiB bodies, the most the API reads, of shapes that would expose
// work growing faster than the body: many keys, many escapes, many elements.
func TestCheckLarge(t *testing.T) {
	t.Parallel()
	const size = 64 << 10
	bodies := map[string]string{
		"keys":    manyKeys(size/16, false),
		"escapes": `"` + strings.Repeat(`\ud83d\ude00`, size/12) + `"`,
		"array":   "[" + strings.Repeat("1,", size/2) + "1]",
		"shallow": strings.Repeat("[", MaxDepth-1) + strings.Repeat("[],", size/3) + "[]" + strings.Repeat("]", MaxDepth-1),
	}
	for name, body := range bodies {
		if err := Check([]byte(body)); err != nil {
			t.Errorf("Check(%s, %d bytes) = %v, want nil", name, len(body), err)
		}
	}
}

func FuzzCheck(f *testing.F) {
	for _, seed := range []string{
		`{"email":"ada@example.com","password":"correct horse","full_name":"Ada Lovelace"}`,
		`{"items":[{"name":"a"},{"name":"b","tags":["x","y"]}]}`,
		`[1,-2.5e10,true,false,null,"s",{},[]]`,
		`{"a":1,"\u0061":2}`,
		`{"a":{"b":1,"b":2}}`,
		`{"s":"\ud83d\ude00"}`,
		`{"s":"\ud800"}`,
		`["\udc00\ud800"]`,
		`{"s":"\\u0000"}`,
		`{"s":"a\u0000b"}`,
		`{"a\u0000":1}`,
		`{"a":1} trailing`,
		``,
		nested(MaxDepth+1, "[", "]", ""),
		"{\"a\":\"\xff\"}",
		`{"":{"":[{"":"\"\\\/\b\f\n\r\t"}]}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := Check(body)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Check(%q) = %T %v, want *Error", body, err, err)
			}
			switch e.Kind {
			case KindSyntax, KindTrailingData:
				if e.Path != "body" {
					t.Fatalf("Check(%q) = %v, want path body", body, err)
				}
				if json.Valid(body) {
					t.Fatalf("Check(%q) = %v, but json.Valid accepts it", body, err)
				}
			case KindDepth, KindDuplicateKey, KindInvalidUTF8, KindNUL:
			default:
				t.Fatalf("Check(%q) = %v: unknown kind", body, err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("Check(%q) = nil, but json.Valid refuses it", body)
		}
		if !utf8.Valid(body) {
			t.Fatalf("Check(%q) = nil, but it is not valid UTF-8", body)
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("Check(%q) = nil, but json.Unmarshal fails: %v", body, err)
		}
		if s, ok := findNUL(v); ok {
			t.Fatalf("Check(%q) = nil, but it decodes to a string or key holding NUL: %q", body, s)
		}
	})
}

// findNUL returns a string or key in v holding NUL.
func findNUL(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, strings.Contains(v, "\x00")
	case []any:
		for _, e := range v {
			if s, ok := findNUL(e); ok {
				return s, true
			}
		}
	case map[string]any:
		for k, e := range v {
			if strings.Contains(k, "\x00") {
				return k, true
			}
			if s, ok := findNUL(e); ok {
				return s, true
			}
		}
	}
	return "", false
}

// profileBody is about 1 KiB, shaped like the request bodies the API takes.
const profileBody = `{
  "email": "ada.lovelace@example.com",
  "username": "ada_lovelace",
  "password": "correct horse battery staple",
  "full_name": "Ada Lovelace, Countess of Lovelace",
  "locale": "en-GB",
  "time_zone": "Europe/London",
  "marketing_opt_in": false,
  "roles": ["user", "moderator"],
  "address": {
    "line1": "12 St James's Square",
    "line2": null,
    "city": "London",
    "postcode": "SW1Y 4JH",
    "country": "GB"
  },
  "phones": [
    {"kind": "home", "number": "+44 20 7946 0958", "primary": true},
    {"kind": "work", "number": "+44 20 7946 0959", "primary": false}
  ],
  "preferences": {
    "theme": "dark",
    "notifications": {"email": true, "sms": false, "push": true},
    "languages": ["en", "fr", "it"],
    "page_size": 50
  },
  "bio": "Mathematician and writer, chiefly known for her work on Charles Babbage's proposed mechanical general-purpose computer, the Analytical Engine. She was the first to recognise that the machine had applications beyond pure calculation. \u00c9crivaine \ud83d\udcdc.",
  "metadata": {"signup_source": "web", "referrer": "https://example.org/welcome?utm_source=newsletter", "score": 0.9375}
}`

func BenchmarkCheck(b *testing.B) {
	body := []byte(profileBody)
	if err := Check(body); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Check(body); err != nil {
			b.Fatal(err)
		}
	}
}
