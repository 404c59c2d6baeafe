package main

import "testing"

func TestAppArg(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"web", "web", false},
		{"app/web", "web", false},
		{"apps/web", "web", false},
		{"job/web", "", true},
		{"instance/web-1", "", true},
	} {
		got, err := appArg(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("appArg(%q) = %q, %v; want %q (error: %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}
