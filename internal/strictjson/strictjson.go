// Package strictjson refuses JSON request bodies that encoding/json would accept but that mean
// something ambiguous or unsafe: more than one value, deep nesting, invalid UTF-8 (including
// escaped lone surrogates, which encoding/json silently turns into U+FFFD), repeated keys (of
// which encoding/json silently keeps the last) and NUL characters.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting accepted (objects and arrays), 32.
const MaxDepth = 32

// The kinds of Error.
const (
	KindSyntax       = "syntax"
	KindDepth        = "depth"
	KindDuplicateKey = "duplicate-key"
	KindInvalidUTF8  = "invalid-utf8"
	KindNUL          = "nul"
	KindTrailingData = "trailing-data"
)

// bodyPath is the Path of errors about the document as a whole.
const bodyPath = "body"

// Error describes why a JSON body is refused; Path is a dotted JSON path such as "full_name" or
// "items.3.name" ("body" for the document as a whole). Kinds: "syntax", "depth", "duplicate-key",
// "invalid-utf8", "nul", "trailing-data".
type Error struct {
	Kind, Path, Detail string
}

// Error returns the kind, path and detail on one line.
func (e *Error) Error() string {
	return fmt.Sprintf("json %s at %q: %s", e.Kind, e.Path, e.Detail)
}

// smallObject is how many keys an object holds before its seen keys move from a slice, searched
// linearly, to a map: most request objects are small, and a map per object costs allocations.
const smallObject = 8

// frame is one open object or array, and where in it the reader is.
type frame struct {
	object  bool
	wantKey bool     // object: the next string token is a key
	key     string   // object: the key whose value comes next or is being read
	index   int      // array: the index of the current element, -1 before the first
	keys    []string // object: the keys seen, while there are at most smallObject of them
	seen    map[string]struct{}
}

// addKey records key and reports whether it was new to the object.
func (f *frame) addKey(key string) bool {
	if f.seen != nil {
		if _, dup := f.seen[key]; dup {
			return false
		}
		f.seen[key] = struct{}{}
		return true
	}
	for _, k := range f.keys {
		if k == key {
			return false
		}
	}
	if len(f.keys) < smallObject {
		if f.keys == nil {
			f.keys = make([]string, 0, smallObject)
		}
		f.keys = append(f.keys, key)
		return true
	}
	f.seen = make(map[string]struct{}, 2*smallObject)
	for _, k := range f.keys {
		f.seen[k] = struct{}{}
	}
	f.seen[key] = struct{}{}
	f.keys = nil
	return true
}

// Check refuses a request body that is not exactly one JSON value; that nests deeper than
// MaxDepth; that is not valid UTF-8 (checked on the raw bytes, including inside escapes that
// decode to lone surrogates such as "\ud800"); that repeats a key within one object (compare
// keys after unescaping, so "a" and "\u0061" are the same key); or whose strings or keys contain
// U+0000 (raw is impossible in valid JSON, so this means the escape \u0000). Returns *Error or nil.
func Check(body []byte) error {
	if !utf8.Valid(body) {
		return &Error{Kind: KindInvalidUTF8, Path: bodyPath, Detail: "body is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	stack := make([]frame, 0, 8)
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				// Token reports EOF only where a value or the rest of one was expected.
				err = io.ErrUnexpectedEOF
			}
			return syntaxError(err, dec.InputOffset())
		}
		if n := len(stack); n > 0 && !stack[n-1].object && !isDelim(tok, ']') {
			stack[n-1].index++
		}

		switch tok := tok.(type) {
		case json.Delim:
			if tok == '{' || tok == '[' {
				if len(stack) == MaxDepth {
					return &Error{Kind: KindDepth, Path: path(stack), Detail: fmt.Sprintf("nested deeper than %d levels", MaxDepth)}
				}
				stack = append(stack, frame{object: tok == '{', wantKey: tok == '{', index: -1})
				continue
			}
			stack = stack[:len(stack)-1] // '}' or ']': the decoder has matched it
		case string:
			kind, detail := scanEscapes(body[start:dec.InputOffset()])
			if n := len(stack); n > 0 && stack[n-1].wantKey {
				top := &stack[n-1]
				top.key, top.wantKey = tok, false
				if kind == "" && !top.addKey(tok) {
					kind, detail = KindDuplicateKey, "key appears more than once in the object"
				}
				if kind != "" {
					return &Error{Kind: kind, Path: path(stack), Detail: detail}
				}
				continue // its value follows
			}
			if kind != "" {
				return &Error{Kind: kind, Path: path(stack), Detail: detail}
			}
		}

		// A value (a scalar, or an object or array just closed) has ended.
		if len(stack) == 0 {
			if end := dec.InputOffset(); !onlySpace(body[end:]) {
				return &Error{Kind: KindTrailingData, Path: bodyPath, Detail: fmt.Sprintf("data after the JSON value, at byte %d", end)}
			}
			return nil
		}
		if top := &stack[len(stack)-1]; top.object {
			top.wantKey = true
		}
	}
}

func isDelim(tok json.Token, d json.Delim) bool {
	got, ok := tok.(json.Delim)
	return ok && got == d
}

// path renders the reader's position as a dotted path.
func path(stack []frame) string {
	if len(stack) == 0 {
		return bodyPath
	}
	var b strings.Builder
	for i, f := range stack {
		if i > 0 {
			b.WriteByte('.')
		}
		if f.object {
			b.WriteString(f.key)
		} else {
			b.WriteString(strconv.Itoa(f.index))
		}
	}
	return b.String()
}

// scanEscapes looks at the raw text of one string token (with the separators before it, which
// hold no backslashes) for the escapes \u0000 and lone surrogates; the decoder has already
// checked that every escape is well formed.
func scanEscapes(raw []byte) (kind, detail string) {
	for i := bytes.IndexByte(raw, '\\'); i >= 0 && i+1 < len(raw); {
		if raw[i+1] != 'u' {
			i = next(raw, i+2)
			continue
		}
		u := hex4(raw[i+2 : i+6])
		switch {
		case u == 0:
			return KindNUL, "string holds the NUL character \\u0000"
		case u >= 0xDC00 && u <= 0xDFFF:
			return KindInvalidUTF8, "string holds a lone low surrogate escape"
		case u >= 0xD800 && u <= 0xDBFF:
			if i+12 > len(raw) || raw[i+6] != '\\' || raw[i+7] != 'u' {
				return KindInvalidUTF8, "string holds a lone high surrogate escape"
			}
			if low := hex4(raw[i+8 : i+12]); low < 0xDC00 || low > 0xDFFF {
				return KindInvalidUTF8, "string holds a lone high surrogate escape"
			}
			i = next(raw, i+12)
		default:
			i = next(raw, i+6)
		}
	}
	return "", ""
}

// next returns the index of the first backslash in raw at or after from, or -1.
func next(raw []byte, from int) int {
	if from >= len(raw) {
		return -1
	}
	j := bytes.IndexByte(raw[from:], '\\')
	if j < 0 {
		return -1
	}
	return from + j
}

// hex4 decodes four hexadecimal digits the decoder has already validated.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

func onlySpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

func syntaxError(err error, offset int64) *Error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		offset = se.Offset
	}
	return &Error{Kind: KindSyntax, Path: bodyPath, Detail: fmt.Sprintf("%v (near byte %d)", err, offset)}
}
