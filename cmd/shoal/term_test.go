package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
)

// TestTermWriter: a log stream on its way to a terminal keeps its lines
// and text and loses its power over the terminal, wherever the writes
// split it.
func TestTermWriter(t *testing.T) {
	in := "ok\n\tindented\n\x1b]0;owned\x07\x1b[2J\rtemp 21°C \u009b6n\xff \u202eexe.gpj\nlast"
	want := "ok\n\tindented\n" + `\x1b]0;owned\x07\x1b[2J\x0dtemp 21°C \u009b6n\xff \u202eexe.gpj` + "\nlast"
	for size := 1; size <= len(in); size++ {
		var out bytes.Buffer
		w := &termWriter{w: &out}
		for i := 0; i < len(in); i += size {
			if _, err := w.Write([]byte(in[i:min(i+size, len(in))])); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("written %d bytes at a time: %q, want %q", size, out.String(), want)
		}
	}
	// A stream that ends inside a character shows what it has.
	var out bytes.Buffer
	w := &termWriter{w: &out}
	_, _ = w.Write([]byte("a\xe2\x80"))
	_ = w.Close()
	if out.String() != `a\xe2\x80` {
		t.Errorf("a stream ending inside a character: %q", out.String())
	}
}

// TestTablesEscapeControls: what a node or an instance wrote cannot steer
// the terminal or forge a row of `shoal get` / `shoal events` / describe.
func TestTablesEscapeControls(t *testing.T) {
	ev := &api.Event{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindEvent}, Metadata: api.ObjectMeta{Name: "e", Namespace: "default"},
		Type: "Warning", Object: "Instance/web-1", Reason: "BackOff", Message: "crashed\n12:00:00   Normal   Instance/web-1   Started   all good\x1b[1A\x1b[2K\u202e"}
	var out bytes.Buffer
	if err := printList(t.Context(), &out, api.MustKind(api.KindEvent), []api.Object{ev}, "table", false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 2 || strings.ContainsAny(out.String(), "\x1b\r") || strings.Contains(out.String(), "\u202e") {
		t.Errorf("events table:\n%q", out.String())
	}
	if !strings.Contains(lines[1], `crashed\x0a12:00:00`) || !strings.Contains(lines[1], `\x1b[1A\x1b[2K\u202e`) {
		t.Errorf("the message is not shown escaped: %q", lines[1])
	}
	out.Reset()
	if err := printSection(&out, "Status", map[string]string{"message": "a\u202eb"}); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "Status:\n  message: a\\u202eb\n" {
		t.Errorf("describe section: %q", got)
	}
}
