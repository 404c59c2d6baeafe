package api

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrames(t *testing.T) {
	var b bytes.Buffer
	for _, f := range []struct {
		t FrameType
		p []byte
	}{{FrameStdin, []byte("hi")}, {FrameResize, ResizePayload(80, 24)}, {FrameExit, ExitPayload(-3)}, {FrameStdinClosed, nil}} {
		if err := WriteFrame(&b, f.t, f.p); err != nil {
			t.Fatal(err)
		}
	}
	if ft, p, err := ReadFrame(&b); err != nil || ft != FrameStdin || string(p) != "hi" {
		t.Fatalf("frame 1: %v %q %v", ft, p, err)
	}
	if ft, p, err := ReadFrame(&b); err != nil || ft != FrameResize {
		t.Fatalf("frame 2: %v %v", ft, err)
	} else if w, h, err := ParseResize(p); err != nil || w != 80 || h != 24 {
		t.Fatalf("resize %dx%d %v", w, h, err)
	}
	if _, p, err := ReadFrame(&b); err != nil {
		t.Fatal(err)
	} else if code, err := ParseExit(p); err != nil || code != -3 {
		t.Fatalf("exit %d %v", code, err)
	}
	if ft, p, err := ReadFrame(&b); err != nil || ft != FrameStdinClosed || len(p) != 0 {
		t.Fatalf("frame 4: %v %q %v", ft, p, err)
	}
	if _, _, err := ReadFrame(&b); err != io.EOF {
		t.Fatalf("end: %v, want EOF", err)
	}
	// A frame cut short, and one claiming more than the limit.
	if _, _, err := ReadFrame(bytes.NewReader([]byte{1, 0, 0, 0, 9, 'x'})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short frame: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader([]byte{1, 0xff, 0xff, 0xff, 0xff})); err == nil {
		t.Errorf("oversized frame accepted")
	}
}
