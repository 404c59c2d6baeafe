package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRotateLog(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "current.log")
	// A writer that appends, like the shim.
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first := strings.Repeat("a", 100) + "\n"
	f.WriteString(first)
	if err := rotateLog(p, 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p + ".1"); err == nil {
		t.Fatal("a log under the limit was rotated")
	}
	f.WriteString(strings.Repeat("b", 1000) + "\n")
	if err := rotateLog(p, 1000); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(p + ".1")
	if !strings.HasPrefix(string(old), first) || len(old) != 1102 {
		t.Fatalf("rotated file has %d bytes, want the 1102 written before rotation", len(old))
	}
	f.WriteString("after\n")
	cur, _ := os.ReadFile(p)
	if string(cur) != "after\n" {
		t.Fatalf("after rotation the writer appends at the start again: got %q", cur)
	}
}

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 5, "a\nb\nc\n"},
		{"a\nb\nc", 1, "c"},
		{"a\n", 0, ""},
		{"", 3, ""},
	} {
		if got := string(lastLines([]byte(tc.in), tc.n)); got != tc.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
