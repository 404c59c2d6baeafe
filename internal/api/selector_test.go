package api

import (
	"errors"
	"testing"
)

func TestSelector(t *testing.T) {
	labels := map[string]string{"app": "web", "tier": "front"}
	tests := []struct {
		in      string
		match   bool
		wantErr bool
	}{
		{"", true, false},
		{"app=web", true, false},
		{"app==web", true, false},
		{"app=web,tier=front", true, false},
		{" app = web , tier=front ", true, false},
		{"app=db", false, false},
		{"app=web,tier=back", false, false},
		{"zone=a", false, false},
		{"zone!=a", true, false},
		{"app!=web", false, false},
		{"app!=db", true, false},
		{"app", false, true},
		{"=web", false, true},
		{"app=web=x", false, true},
		{"app=web,", false, true},
	}
	for _, tt := range tests {
		sel, err := ParseSelector(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseSelector(%q) error = %v, want invalid", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSelector(%q): %v", tt.in, err)
			continue
		}
		if got := sel.Matches(labels); got != tt.match {
			t.Errorf("%q matches %v = %v, want %v", tt.in, labels, got, tt.match)
		}
		again, err := ParseSelector(sel.String())
		if err != nil || again.String() != sel.String() {
			t.Errorf("%q: String() %q does not parse back: %v", tt.in, sel.String(), err)
		}
	}
}
