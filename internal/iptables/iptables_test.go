package iptables

import (
	"slices"
	"testing"
)

func TestSplitRule(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{`-A OUTPUT -m comment --comment "shoal service proxy" -j SHOAL-SVC-shoal0`,
			[]string{"-A", "OUTPUT", "-m", "comment", "--comment", "shoal service proxy", "-j", "SHOAL-SVC-shoal0"}},
		{`-A PREROUTING ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j X`,
			[]string{"-A", "PREROUTING", "!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "X"}},
		{`-A X -m comment --comment "a \"quoted\" word" -j Y`,
			[]string{"-A", "X", "-m", "comment", "--comment", `a "quoted" word`, "-j", "Y"}},
		{`-m comment --comment "" -j Y`, []string{"-m", "comment", "--comment", "", "-j", "Y"}},
		{"", nil},
		{"-P OUTPUT ACCEPT  ", []string{"-P", "OUTPUT", "ACCEPT"}},
	} {
		if got := SplitRule(tc.line); !slices.Equal(got, tc.want) {
			t.Errorf("SplitRule(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}
