package users

import (
	"slices"
	"testing"
	"time"
)

func TestEscapeLike(t *testing.T) {
	if got := escapeLike(`100%_\x`); got != `100\%\_\\x` {
		t.Fatalf("escapeLike = %q", got)
	}
}

// The trigrams are those contrib/pg_trgm's generate_wildcard_trgm draws from '%' + s + '%'.
func TestLikeTrigrams(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"person 4f", []string{"per", "ers", "rso", "son", "on ", "  4", " 4f"}},
		{"abc", []string{"abc"}},
		{"ab", nil},
		{" a", []string{"  a"}},
		{"yz ", []string{"yz "}},
		{" a ", []string{"  a", " a "}},
		{"a%b", []string{"  b"}},
		{"r12345", []string{"r12", "123", "234", "345"}},
		{"", nil},
	}
	for _, tt := range tests {
		if got := likeTrigrams(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("likeTrigrams(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTrigramWindows(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"person 4f", []string{"per", "ers", "rso", "son", "on ", " 4", " 4f"}},
		{"a b", []string{" b"}},
		{"x a y", []string{" a", " a ", " y"}},
		// A word next to a non-ASCII letter may run on past it: only its inner trigrams.
		{"éabcd", []string{"abc", "bcd"}},
		{"abcdé", []string{"abc", "bcd"}},
		{"é abc", []string{" a", " ab", "abc"}},
		{"ab", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, w := range trigramWindows(tt.in) {
			got = append(got, tt.in[w.from:w.to])
			if !slices.Equal(w.trigrams, likeTrigrams(tt.in[w.from:w.to])) {
				t.Errorf("%q: window %q has trigrams %q", tt.in, tt.in[w.from:w.to], w.trigrams)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("trigramWindows(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSearchPieces(t *testing.T) {
	// Frequencies as ANALYZE finds them on the benchmark's million users.
	million := map[string]float64{
		"mem": 1, "emb": 1, "mbe": 1, "ber": 1, "er1": 0.109, "r12": 0.0108, "123": 0.0102, "234": 0.0099,
		"per": 0.75, "ers": 0.75, "rso": 0.75, "son": 0.75, "on ": 0.75, "  4": 0.044, "  p": 0.75, "  m": 1,
	}
	tests := []struct {
		name string
		in   string
		freq map[string]float64
		want []string
	}{
		{"common words left out", "person 4f", million, []string{" 4f"}},
		{"rare run kept whole", "member12345", million, []string{"r12345"}},
		{"no statistics", "person 4f", nil, nil},
		{"nothing common to leave out", "12345", million, nil},
		{"nothing rare to keep", "son", million, nil},
		{"only a fairly common trigram", "son 4", million, nil},
		{"padding trigram common", "a bcd", map[string]float64{"  b": 0.5}, []string{"bcd"}},
		// " a" and "abcd" overlap, but joined they would draw the common " ab".
		{"join refused", "x abcd", map[string]float64{" ab": 0.5}, []string{" a", "abcd"}},
		{"two words", "person 4f 7c", million, []string{" 4f 7c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := searchPieces(tt.in, tt.freq); !slices.Equal(got, tt.want) {
				t.Errorf("searchPieces(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// shortSearch asks the tripled index for an ASCII q that pg_trgm draws no trigram from, and
// only when one of its tripled trigrams is rare by the statistics.
func TestShortSearch(t *testing.T) {
	freq := map[string]float64{"eee": 1, "zzz": 0.2, "rrr": 0.9, "rr ": 0.005, "  e": 1, " ee": 1, "qqq": 0.3, "qq ": 0.3}
	for _, tt := range []struct {
		q    string
		freq map[string]float64
		want string
	}{
		{"zq", freq, "zzzqqq"}, // "zzq" and "zqq" are not listed: rarer than any listed one
		{"zq", nil, ""},        // never analyzed
		{"e", freq, ""},        // everyone's
		{"r ", freq, "rrr   "}, // "rr ": an r ending a word, rare
		{"q%", freq, ""},       // "qqq" and "qq " are common
		{"@e", freq, ""},       // "  e", " ee" and "eee" are common
		{"%", freq, ""},        // no trigram even tripled
		{"abc", freq, ""},      // pg_trgm's own index serves it
		{"\u00e9", freq, ""},   // not ASCII
		{"o z", freq, ""},      // "  z": the trigram index has it
		{"z", freq, ""},        // "zzz" is listed at 0.2
		{"j", freq, "jjj"},     // unlisted
		{"4_", map[string]float64{"444": 0.5}, "444___"},
	} {
		if got := shortSearch(tt.q, tt.freq); got != tt.want {
			t.Errorf("shortSearch(%q) = %q, want %q", tt.q, got, tt.want)
		}
	}
}

// ifMatch follows RFC 9110 13.1.1: "*" or a listed tag by strong comparison; nothing else.
func TestIfMatch(t *testing.T) {
	u := User{UpdatedAt: time.Date(2026, 12, 7, 10, 0, 0, 123456000, time.UTC)}
	tag := ETag(u)
	if tag == ETag(User{UpdatedAt: u.UpdatedAt.Add(time.Microsecond)}) {
		t.Fatalf("a microsecond later has the same tag %s", tag)
	}
	for _, tt := range []struct {
		cond *string
		want bool
	}{
		{nil, true},
		{new(tag), true},
		{new("*"), true},
		{new(` "x" ,` + tag + ` `), true},
		{new("W/" + tag), false},
		{new(""), false},
		{new(tag[1 : len(tag)-1]), false}, // unquoted
		{new(`"x"`), false},
	} {
		if got := ifMatch(tt.cond, u); got != tt.want {
			shown := "none"
			if tt.cond != nil {
				shown = *tt.cond
			}
			t.Errorf("ifMatch(%q) with tag %s = %v, want %v", shown, tag, got, tt.want)
		}
	}
}
