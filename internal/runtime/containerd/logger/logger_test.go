package logger

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets TestMainAsShim run this binary the way the shim runs the
// shoal binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Command {
		os.Exit(Main())
	}
	os.Exit(m.Run())
}

func TestOptionsRoundTrip(t *testing.T) {
	in := Options{Path: "/var/log/shoal/a b&c.log", MaxBytes: 1234, MaxFiles: 3}
	out, err := ParseOptions(in.Encode())
	if err != nil || out != in {
		t.Fatalf("ParseOptions(Encode(%+v)) = %+v, %v", in, out, err)
	}
	def, err := ParseOptions(Options{Path: "/x.log"}.Encode())
	if err != nil || def.MaxBytes != DefaultMaxBytes || def.MaxFiles != DefaultMaxFiles {
		t.Errorf("defaults = %+v, %v", def, err)
	}
	for _, bad := range []string{"path=relative.log", "path=/x&max-bytes=-1", "path=/x&max-files=0", "%zz"} {
		if _, err := ParseOptions(bad); err == nil {
			t.Errorf("ParseOptions(%q) accepted", bad)
		}
	}
}

func TestFileRotatesBySize(t *testing.T) {
	tests := []struct {
		name     string
		maxFiles int
		writes   []string
		want     map[string]string // file suffix -> content; absent suffixes must not exist
	}{
		{
			name:     "fits",
			maxFiles: 2,
			writes:   []string{"aaaa\n", "bbbb\n"},
			want:     map[string]string{"": "aaaa\nbbbb\n"},
		},
		{
			name:     "rotates to .1 and keeps two files",
			maxFiles: 2,
			writes:   []string{"aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n"},
			want:     map[string]string{"": "eeee\n", ".1": "cccc\ndddd\n"},
		},
		{
			name:     "three files shift",
			maxFiles: 3,
			writes:   []string{"aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n"},
			want:     map[string]string{"": "eeee\n", ".1": "cccc\ndddd\n", ".2": "aaaa\nbbbb\n"},
		},
		{
			name:     "one file starts over",
			maxFiles: 1,
			writes:   []string{"aaaa\n", "bbbb\n", "cccc\n"},
			want:     map[string]string{"": "cccc\n"},
		},
		{
			name:     "oversized write goes whole into a fresh file",
			maxFiles: 2,
			writes:   []string{"aaaa\n", strings.Repeat("x", 30) + "\n", "bbbb\n"},
			want:     map[string]string{"": "bbbb\n", ".1": strings.Repeat("x", 30) + "\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "logs", "c.log")
			f, err := OpenFile(Options{Path: path, MaxBytes: 10, MaxFiles: tt.maxFiles})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.writes {
				if _, err := f.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			for _, suffix := range []string{"", ".1", ".2", ".3"} {
				b, err := os.ReadFile(path + suffix)
				want, ok := tt.want[suffix]
				switch {
				case !ok && err == nil:
					t.Errorf("%s exists with %q; want it absent", suffix, b)
				case ok && err != nil:
					t.Errorf("%s: %v; want %q", suffix, err, want)
				case ok && string(b) != want:
					t.Errorf("%s = %q, want %q", suffix, b, want)
				}
			}
		})
	}
}

func TestFileAppendsAndCountsExistingSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	if err := os.WriteFile(path, []byte("old-run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(Options{Path: path, MaxBytes: 10, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("new\n")); err != nil { // 8+4 > 10: rotates first
		t.Fatal(err)
	}
	f.Close()
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Errorf("log = %q, want %q", b, "new\n")
	}
	if b, _ := os.ReadFile(path + ".1"); string(b) != "old-run\n" {
		t.Errorf("log.1 = %q, want %q", b, "old-run\n")
	}
}

func TestRunCopiesWholeLinesFromBothStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	ready := &recorder{}
	done := make(chan error, 1)
	go func() { done <- Run(Options{Path: path, MaxBytes: 1 << 20, MaxFiles: 2}, outR, errR, ready, nil) }()

	go func() {
		for range 100 {
			io.WriteString(outW, "out-line-"+strings.Repeat("o", 50)+"\n")
		}
		io.WriteString(outW, "no newline at the end")
		outW.Close()
	}()
	go func() {
		for range 100 {
			io.WriteString(errW, "err-line-"+strings.Repeat("e", 50)+"\n")
		}
		errW.Close()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after both streams ended")
	}
	if !bytes.Equal(ready.buf.Bytes(), []byte{0}) || !ready.closed {
		t.Errorf("ready got %v closed=%v, want one byte then close", ready.buf.Bytes(), ready.closed)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(string(b), "\n")
	var outs, errs int
	for _, l := range lines {
		switch {
		case l == "out-line-"+strings.Repeat("o", 50):
			outs++
		case l == "err-line-"+strings.Repeat("e", 50):
			errs++
		case l == "no newline at the end" || l == "":
		default:
			t.Errorf("mangled line %q", l)
		}
	}
	if outs != 100 || errs != 100 {
		t.Errorf("got %d stdout and %d stderr lines, want 100 each", outs, errs)
	}
}

func TestRunStopsAfterDrainTimeoutOnSIGTERM(t *testing.T) {
	defer func(d time.Duration) { drainTimeout = d }(drainTimeout)
	drainTimeout = 100 * time.Millisecond
	path := filepath.Join(t.TempDir(), "c.log")
	outR, outW := io.Pipe()
	defer outW.Close()
	errR, errW := io.Pipe()
	defer errW.Close()
	stop := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- Run(Options{Path: path}, outR, errR, nil, stop) }()
	stop <- os.Interrupt
	select {
	case err := <-done:
		if err == nil {
			t.Error("Run returned nil while the streams were still open")
		}
	case <-time.After(drainTimeout + 5*time.Second):
		t.Fatal("Run did not give up after the drain timeout")
	}
}

// TestMainAsShim runs this test binary as the shim runs the logger: the
// options as arguments after Command, the streams on fds 3 and 4, the
// ready pipe on fd 5.
func TestMainAsShim(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	readyR, readyW, _ := os.Pipe()
	cmd := exec.Command(os.Args[0], Command, Options{Path: path, MaxBytes: 100, MaxFiles: 2}.Encode())
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	cmd.Env = []string{"CONTAINER_ID=c", "CONTAINER_NAMESPACE=ns"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outR.Close()
	errR.Close()
	readyW.Close()
	b := make([]byte, 1)
	if n, err := readyR.Read(b); n != 1 || err != nil {
		t.Fatalf("ready pipe: read %d bytes, %v", n, err)
	}
	// 162 bytes in all: one rotation, nothing dropped, whatever the order.
	for i := range 5 {
		io.WriteString(outW, strings.Repeat(string(rune('a'+i)), 29)+"\n") // 30 bytes a line
	}
	io.WriteString(errW, "from stderr\n")
	outW.Close()
	errW.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("logger exited: %v; stderr: %s", err, stderr.String())
	}
	cur, _ := os.ReadFile(path)
	old, _ := os.ReadFile(path + ".1")
	if len(cur) == 0 || len(cur) > 100 || len(old) == 0 || len(old) > 100 {
		t.Errorf("sizes %d and %d, want both in 1..100", len(cur), len(old))
	}
	if !strings.Contains(string(cur)+string(old), "from stderr\n") ||
		!strings.Contains(string(cur)+string(old), strings.Repeat("e", 29)+"\n") {
		t.Errorf("log lost lines: %q + %q", old, cur)
	}
}

type recorder struct {
	buf    bytes.Buffer
	closed bool
}

func (r *recorder) Write(p []byte) (int, error) { return r.buf.Write(p) }
func (r *recorder) Close() error                { r.closed = true; return nil }
