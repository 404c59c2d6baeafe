package api

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Text that instances and nodes write (event messages, status messages,
// logs) reaches users' terminals. A terminal acts on some characters
// instead of showing them: ESC starts sequences that move the cursor,
// rewrite lines or set the window title, BEL, BS, CR and the other C0
// controls move or sound, C1 controls (U+0080–U+009F) are ESC sequences
// in one character, and the bidirectional overrides and isolates reorder
// what follows ("Trojan Source"). The CLI shows each of them as an escape
// instead; the API refuses them in Events.

// IsTerminalControl reports whether a terminal may act on r rather than
// show it. Tab and newline count: in a one-line field they forge columns
// and rows.
func IsTerminalControl(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f: // C0 controls, DEL
		return true
	case r >= 0x80 && r <= 0x9f: // C1 controls
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f: // bidi marks
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return true
	}
	return false
}

// EscapeTerminal is s as one line that is safe to print: every terminal
// control (newline and tab too) and every byte that is not UTF-8 written
// as a Go escape (\x1b, \u202e).
func EscapeTerminal(s string) string { return escapeTerminal(s, false) }

// EscapeTerminalText is EscapeTerminal for text of several lines: newlines
// and tabs stay.
func EscapeTerminalText(s string) string { return escapeTerminal(s, true) }

func escapeTerminal(s string, lines bool) string {
	if firstUnsafe(s, lines) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case lines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r < 0x80 && IsTerminalControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case IsTerminalControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// firstUnsafe is the index of the first rune of s that escapeTerminal
// changes, or -1.
func firstUnsafe(s string, lines bool) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return i
			}
		}
		if IsTerminalControl(r) && !(lines && (r == '\n' || r == '\t')) {
			return i
		}
	}
	return -1
}

// terminalControlIn describes the first terminal control in s (newlines
// and tabs allowed when lines), for a validation error ("U+001B at byte
// 4"), or "".
func terminalControlIn(s string, lines bool) string {
	i := firstUnsafe(s, lines)
	if i < 0 {
		return ""
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && n == 1 {
		return fmt.Sprintf("the byte 0x%02x at byte %d is not UTF-8", s[i], i)
	}
	return fmt.Sprintf("%U at byte %d", r, i)
}
