package main

import (
	"strings"
	"testing"
)

func TestValidKeyName(t *testing.T) {
	for name, want := range map[string]bool{
		"owner":                 true,
		"team-a-2":              true,
		strings.Repeat("a", 63): true,
		strings.Repeat("a", 64): false,
		"":                      false,
		"Owner":                 false,
		"../owner":              false,
		"owner.key":             false,
		"own er":                false,
		"ówner":                 false,
	} {
		if got := validKeyName(name); got != want {
			t.Errorf("validKeyName(%q) = %v, want %v", name, got, want)
		}
	}
}
