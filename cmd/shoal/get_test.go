package main

import "testing"

func TestShortImage(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for in, want := range map[string]string{
		"shoal.local/hello:v1@" + d: "shoal.local/hello:v1@sha256:0123456789ab",
		"shoal.local/hello:v1":      "shoal.local/hello:v1",
		"nginx@sha256:short":        "nginx@sha256:short",
	} {
		if got := shortImage(in); got != want {
			t.Errorf("shortImage(%q) = %q, want %q", in, got, want)
		}
	}
}
