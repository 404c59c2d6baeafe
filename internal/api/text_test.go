package api

import "testing"

// TestEscapeTerminal: what a terminal acts on is shown as an escape, the
// rest (printable text in any script) is left alone.
func TestEscapeTerminal(t *testing.T) {
	for _, tc := range []struct {
		name, in, line, text string
	}{
		{"plain", "pulled nginx:1.27 in 2s", "pulled nginx:1.27 in 2s", "pulled nginx:1.27 in 2s"},
		{"unicode text", "température élevée — 温度", "température élevée — 温度", "température élevée — 温度"},
		{"window title", "\x1b]0;owned\x07", `\x1b]0;owned\x07`, `\x1b]0;owned\x07`},
		{"clear screen, cursor home", "\x1b[2J\x1b[H", `\x1b[2J\x1b[H`, `\x1b[2J\x1b[H`},
		{"carriage return rewrites the line", "failed\rok    ", `failed\x0dok    `, `failed\x0dok    `},
		{"backspace, delete", "a\bb\x7f", `a\x08b\x7f`, `a\x08b\x7f`},
		{"newline and tab", "a\n\tb", `a\x0a\x09b`, "a\n\tb"},
		{"C1 CSI as UTF-8", "a\u009b2Jb", `a\u009b2Jb`, `a\u009b2Jb`},
		{"C1 as a lone byte", "a\x9b2J", `a\x9b2J`, `a\x9b2J`},
		{"invalid UTF-8", "a\xffb\xc3", `a\xffb\xc3`, `a\xffb\xc3`},
		{"bidi override", "user\u202egpj.exe", `user\u202egpj.exe`, `user\u202egpj.exe`},
		{"bidi isolates", "\u2066a\u2067b\u2068c\u2069", `\u2066a\u2067b\u2068c\u2069`, `\u2066a\u2067b\u2068c\u2069`},
		{"bidi embeddings and marks", "\u202a\u202b\u202c\u202d\u200e\u200f\u061c", `\u202a\u202b\u202c\u202d\u200e\u200f\u061c`, `\u202a\u202b\u202c\u202d\u200e\u200f\u061c`},
		{"NUL", "a\x00b", `a\x00b`, `a\x00b`},
		{"no-break space stays", "a\u00a0b", "a\u00a0b", "a\u00a0b"},
	} {
		if got := EscapeTerminal(tc.in); got != tc.line {
			t.Errorf("%s: EscapeTerminal(%q) = %q, want %q", tc.name, tc.in, got, tc.line)
		}
		if got := EscapeTerminalText(tc.in); got != tc.text {
			t.Errorf("%s: EscapeTerminalText(%q) = %q, want %q", tc.name, tc.in, got, tc.text)
		}
		// What comes out is safe to print, and escaping is done once.
		if c := terminalControlIn(EscapeTerminal(tc.in), false); c != "" {
			t.Errorf("%s: EscapeTerminal left %s", tc.name, c)
		}
		if again := EscapeTerminal(tc.line); again != tc.line {
			t.Errorf("%s: escaping twice changes %q to %q", tc.name, tc.line, again)
		}
	}
}
