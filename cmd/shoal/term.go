package main

import (
	"io"
	"os"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/shoal-dev/shoal/internal/api"
)

// What instances and nodes wrote (event and status messages, logs) may
// hold characters a terminal acts on: the CLI shows them as escapes
// (api.EscapeTerminal). Table cells are one line each, always; describe's
// sections keep their lines. Logs are a byte stream that users redirect
// and pipe, so they are escaped only on their way to a terminal (--raw
// keeps them byte for byte there too). `exec -it` is the user's own
// terminal session and stays raw.

// escapeCells makes each cell one safe line.
func escapeCells(cells []string) []string {
	for i, c := range cells {
		cells[i] = api.EscapeTerminal(c)
	}
	return cells
}

// isTerminal says whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// termWriter escapes what it passes on as api.EscapeTerminalText does,
// holding back a character split across two writes until it is whole.
type termWriter struct {
	w    io.Writer
	tail []byte // the start of a UTF-8 sequence the last write ended in
}

func (t *termWriter) Write(p []byte) (int, error) {
	buf := append(t.tail, p...)
	cut := len(buf)
	// At most utf8.UTFMax-1 bytes of an unfinished character.
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				cut = i
			}
			break
		}
	}
	t.tail = append([]byte(nil), buf[cut:]...)
	if _, err := io.WriteString(t.w, api.EscapeTerminalText(string(buf[:cut]))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close writes what is held back, escaped: the stream ended inside a
// character.
func (t *termWriter) Close() error {
	if len(t.tail) == 0 {
		return nil
	}
	_, err := io.WriteString(t.w, api.EscapeTerminalText(string(t.tail)))
	t.tail = nil
	return err
}
