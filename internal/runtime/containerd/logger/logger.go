// Package logger is the container log writer that containerd's shim runs
// for each task (containerd's "binary" logging URI). It copies the task's
// stdout and stderr, line by line, into one file and rotates that file by
// size. Being the shim's child, it outlives agent restarts.
//
// The shim runs `BINARY KEY VALUE` for each query parameter of the logging
// URI, in random order; the driver therefore passes exactly one,
// Command=Options.Encode(), so the shoal binary sees
// `shoal runtime-logger OPTIONS`. File descriptors 3 and 4 are the task's
// stdout and stderr, 5 is closed (after one byte) once the logger is ready.
//
// It must not talk to the agent or containerd: a log writer that blocks
// would block the container.
package logger

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Command is the hidden subcommand of the shoal binary that runs Main.
const Command = "runtime-logger"

// Defaults for Options left zero.
const (
	DefaultMaxBytes = 10 << 20
	DefaultMaxFiles = 2
)

// drainTimeout bounds how long the logger keeps copying after the shim asks
// it to stop (SIGTERM): enough to flush what the pipes hold. A variable for
// tests.
var drainTimeout = 5 * time.Second

// maxLine is the longest line written in one piece; longer lines are split.
const maxLine = 64 << 10

// Options say where one task's log goes and when it rotates.
type Options struct {
	Path     string // the log file
	MaxBytes int64  // rotate when a write would take the file past this
	MaxFiles int    // files kept, counting the live one: Path, Path.1, ...
}

// Encode renders o as one command-line argument.
func (o Options) Encode() string {
	v := url.Values{}
	v.Set("path", o.Path)
	if o.MaxBytes > 0 {
		v.Set("max-bytes", strconv.FormatInt(o.MaxBytes, 10))
	}
	if o.MaxFiles > 0 {
		v.Set("max-files", strconv.Itoa(o.MaxFiles))
	}
	return v.Encode()
}

// ParseOptions reads what Encode wrote.
func ParseOptions(s string) (Options, error) {
	v, err := url.ParseQuery(s)
	if err != nil {
		return Options{}, fmt.Errorf("logger options: %w", err)
	}
	o := Options{Path: v.Get("path"), MaxBytes: DefaultMaxBytes, MaxFiles: DefaultMaxFiles}
	if !filepath.IsAbs(o.Path) {
		return Options{}, fmt.Errorf("logger options: path %q must be absolute", o.Path)
	}
	if s := v.Get("max-bytes"); s != "" {
		if o.MaxBytes, err = strconv.ParseInt(s, 10, 64); err != nil || o.MaxBytes <= 0 {
			return Options{}, fmt.Errorf("logger options: max-bytes %q", s)
		}
	}
	if s := v.Get("max-files"); s != "" {
		if o.MaxFiles, err = strconv.Atoi(s); err != nil || o.MaxFiles < 1 {
			return Options{}, fmt.Errorf("logger options: max-files %q", s)
		}
	}
	return o, nil
}

// RotatedFiles lists the names rotation gives older parts of path:
// path.1 ... path.(maxFiles-1).
func RotatedFiles(path string, maxFiles int) []string {
	var out []string
	for i := 1; i < maxFiles; i++ {
		out = append(out, path+"."+strconv.Itoa(i))
	}
	return out
}

// Main runs the logger as the shim starts it and returns the exit code.
// The options are the argument after Command (or the last argument).
func Main() int {
	arg := ""
	for i, a := range os.Args {
		if a == Command && i+1 < len(os.Args) {
			arg = os.Args[i+1]
		}
	}
	if arg == "" && len(os.Args) > 1 {
		arg = os.Args[len(os.Args)-1]
	}
	opts, err := ParseOptions(arg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	stdout := os.NewFile(3, "container-stdout")
	stderr := os.NewFile(4, "container-stderr")
	ready := os.NewFile(5, "container-wait")

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	defer signal.Stop(stop)

	if err := Run(opts, stdout, stderr, ready, stop); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// Run copies stdout and stderr into the log until both end, or until
// drainTimeout after a value arrives on stop. ready (may be nil) gets one
// byte and is closed once the log file is open.
func Run(opts Options, stdout, stderr io.Reader, ready io.WriteCloser, stop <-chan os.Signal) error {
	f, openErr := OpenFile(opts)
	var w io.Writer = io.Discard
	if openErr == nil {
		defer f.Close()
		w = f
	}
	// Signal ready even without a file: a logger that is not ready makes
	// task creation fail, and a logger that exits breaks the container's
	// stdout. Draining keeps the container running; the error is returned.
	if ready != nil {
		_, _ = ready.Write([]byte{0})
		ready.Close()
	}

	lw := &lockedWriter{w: w}
	done := make(chan struct{}, 2)
	for _, r := range []io.Reader{stdout, stderr} {
		go func() {
			copyLines(lw, r)
			done <- struct{}{}
		}()
	}
	var deadline <-chan time.Time
	for n := 0; n < 2; {
		select {
		case <-done:
			n++
		case <-stop:
			stop = nil
			deadline = time.After(drainTimeout)
		case <-deadline:
			return errors.Join(openErr, errors.New("logger: stopped before the container's output ended"))
		}
	}
	return openErr
}

// copyLines writes r to w one line per Write, so lines from stdout and
// stderr never interleave mid-line. A line longer than maxLine, or one cut
// short by the end of the stream, is ended with a newline where it stops.
func copyLines(w io.Writer, r io.Reader) {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				line = append(line[:len(line):len(line)], '\n') // never into bufio's buffer
			}
			_, _ = w.Write(line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// File is a log file that rotates by size: when a write would take it past
// MaxBytes it becomes Path.1 (Path.1 becomes Path.2, ...; the oldest beyond
// MaxFiles is dropped) and a new Path is started. Not safe for concurrent
// use.
type File struct {
	opts Options
	f    *os.File
	size int64
}

// OpenFile opens (appending) or creates the log file.
func OpenFile(opts Options) (*File, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxFiles < 1 {
		opts.MaxFiles = DefaultMaxFiles
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o755); err != nil {
		return nil, err
	}
	lf := &File{opts: opts}
	if err := lf.open(); err != nil {
		return nil, err
	}
	return lf, nil
}

func (l *File) open() error {
	f, err := os.OpenFile(l.opts.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Write appends p, rotating first if p would not fit. A single write larger
// than MaxBytes goes whole into a fresh file.
func (l *File) Write(p []byte) (int, error) {
	if l.size > 0 && l.size+int64(len(p)) > l.opts.MaxBytes {
		if err := l.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

func (l *File) rotate() error {
	if err := l.f.Close(); err != nil {
		return err
	}
	older := RotatedFiles(l.opts.Path, l.opts.MaxFiles)
	if len(older) == 0 {
		// Keep one file only: start it over.
		if err := os.Truncate(l.opts.Path, 0); err != nil {
			return err
		}
		return l.open()
	}
	for i := len(older) - 1; i > 0; i-- {
		if err := os.Rename(older[i-1], older[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	// If the rename fails the file just keeps growing: losing output
	// would be worse.
	_ = os.Rename(l.opts.Path, older[0])
	return l.open()
}

// Close closes the file.
func (l *File) Close() error { return l.f.Close() }
