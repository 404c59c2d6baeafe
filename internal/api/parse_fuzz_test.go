package api

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Fuzz targets for every decoder a non-server identity reaches: objects
// and status writes (DecodeObject, DecodeStatus), exec frames, label
// selectors, quantities, cron schedules, port ranges, and the terminal
// escaping of what they wrote. FuzzDecode (decode_fuzz_test.go) covers
// manifests. `make fuzz` runs each for a while.

// mustInvalid fails unless err is an *InvalidError.
func mustInvalid(t *testing.T, what string, err error) {
	t.Helper()
	var ie *InvalidError
	if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("%s: error %T %q is not an *InvalidError", what, err, err)
	}
}

// objectSeeds are JSON objects of every kind, as the API receives them.
func objectSeeds(f *testing.F) {
	for _, s := range fuzzSeeds {
		objs, err := Decode([]byte(s))
		if err != nil {
			continue
		}
		for _, o := range objs {
			if b, err := Encode(o, "json"); err == nil {
				f.Add(string(o.GetTypeMeta().Kind), b)
			}
		}
	}
	for _, s := range []struct{ kind, body string }{
		{"App", `{"apiVersion":"shoal/v1","kind":"App","metadata":{"name":"web"},"spec":{"image":"nginx"},"status":{"readyReplicas":2,"serviceIP":"10.96.0.9","history":[{"revision":1}]}}`},
		{"Instance", `{"apiVersion":"shoal/v1","kind":"Instance","metadata":{"name":"web-1","namespace":"default"},"spec":{"app":"web","revision":1,"node":"n1","template":{"image":"nginx"}},"status":{"phase":"Running","ip":"10.88.1.2"}}`},
		{"Node", `{"apiVersion":"shoal/v1","kind":"Node","metadata":{"name":"n1","labels":{"disk":"ssd"}},"spec":{"subnet":"10.88.1.0/24"},"status":{"ready":true,"address":"192.0.2.1:7443","capacity":{"cpu":"2","memory":"4Gi"}}}`},
		{"Secret", `{"apiVersion":"shoal/v1","kind":"Secret","metadata":{"name":"db"},"spec":{"data":{"password":"hunter2"}}}`},
		{"Job", `{"apiVersion":"shoal/v1","kind":"Job","metadata":{"name":"nightly"},"spec":{"schedule":"0 3 * * *","timeZone":"Europe/Berlin","template":{"image":"busybox"}}}`},
		{"User", `{"apiVersion":"shoal/v1","kind":"User","metadata":{"name":"vic"},"spec":{"roles":[{"role":"viewer","namespace":"web"}]}}`},
		{"Token", `{"apiVersion":"shoal/v1","kind":"Token","metadata":{"name":"0123456789abcdef"},"spec":{"role":"agent","secretHash":"` + strings.Repeat("0", 64) + `","expiresAt":"2030-01-01T00:00:00Z"}}`},
		{"Event", `{"apiVersion":"shoal/v1","kind":"Event","metadata":{"name":"web.1","namespace":"default"},"object":"App/web","type":"Warning","reason":"BackOff","message":"x\u001b]0;t\u0007"}`},
		{"Namespace", `{"apiVersion":"shoal/v1","kind":"Namespace","metadata":{"name":"web"},"spec":{"policy":{"privileged":true}}}`},
		{"Bogus", `{}`},
	} {
		f.Add(s.kind, []byte(s.body))
	}
}

// FuzzDecodeObject: the API's create/update decoder, for every kind,
// never panics, refuses with an *InvalidError, and what it accepts
// survives Encode and DecodeObject unchanged.
func FuzzDecodeObject(f *testing.F) {
	objectSeeds(f)
	f.Fuzz(func(t *testing.T, kind string, data []byte) { fuzzDecodeOne(t, DecodeObject, Kind(kind), data) })
}

// FuzzDecodeStatus: the same for status writes (nodes' and servers').
func FuzzDecodeStatus(f *testing.F) {
	objectSeeds(f)
	f.Fuzz(func(t *testing.T, kind string, data []byte) { fuzzDecodeOne(t, DecodeStatus, Kind(kind), data) })
}

func fuzzDecodeOne(t *testing.T, decode func(Kind, []byte) (Object, error), kind Kind, data []byte) {
	obj, err := decode(kind, data)
	if err != nil {
		mustInvalid(t, "decode", err)
		if obj != nil {
			t.Fatalf("an object with an error")
		}
		return
	}
	if obj.GetTypeMeta().Kind != kind {
		t.Fatalf("asked for a %s, got a %s", kind, obj.GetTypeMeta().Kind)
	}
	out, err := Encode(obj, "json")
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if len(out) > MaxDocumentBytes {
		return
	}
	again, err := decode(kind, out)
	if err != nil || !reflect.DeepEqual(again, obj) {
		t.Fatalf("decode(Encode(x)) = %#v, %v; want %#v\n%s", again, err, obj, out)
	}
}

// FuzzReadFrame: exec frames from a client (to the agent) or an agent (to
// the server) never panic the reader, frames re-encode to the bytes they
// were read from, and resize and exit payloads round-trip.
func FuzzReadFrame(f *testing.F) {
	var seed bytes.Buffer
	_ = WriteFrame(&seed, FrameStdin, []byte("ls -l\n"))
	_ = WriteFrame(&seed, FrameResize, ResizePayload(80, 24))
	_ = WriteFrame(&seed, FrameStdinClosed, nil)
	_ = WriteFrame(&seed, FrameExit, ExitPayload(-1))
	f.Add(seed.Bytes())
	f.Add([]byte{byte(FrameStdout), 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{byte(FrameError), 0, 0, 0, 9, 'o', 'o', 'p', 's'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var again bytes.Buffer
		for {
			before := r.Len()
			typ, payload, err := ReadFrame(r)
			if err != nil {
				if errors.Is(err, io.EOF) && before != 0 {
					t.Fatalf("io.EOF with %d bytes left: a cut frame must be ErrUnexpectedEOF", before)
				}
				break
			}
			if len(payload) > MaxFrame {
				t.Fatalf("a payload of %d bytes", len(payload))
			}
			if err := WriteFrame(&again, typ, payload); err != nil {
				t.Fatalf("WriteFrame of a frame read: %v", err)
			}
			switch typ {
			case FrameResize:
				if w, h, err := ParseResize(payload); err == nil && !bytes.Equal(ResizePayload(w, h), payload) {
					t.Fatalf("resize %x does not round-trip", payload)
				}
			case FrameExit:
				if c, err := ParseExit(payload); err == nil && !bytes.Equal(ExitPayload(c), payload) {
					t.Fatalf("exit %x does not round-trip", payload)
				}
			}
		}
		if !bytes.HasPrefix(data, again.Bytes()) {
			t.Fatalf("frames re-encode to %x, not a prefix of %x", again.Bytes(), data)
		}
	})
}

// FuzzParseSelector: ?labelSelector= and -l never panic; what parses has a
// canonical form that parses to itself and matches the same labels.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"", "app=web", "app==web,tier!=db", " a = b , c!=d ", "a=", "=b", "a=b=c", "a!=b!=c", ",", "a=b,,c=d", "ünï=cødé"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseSelector(%q): %v is not ErrInvalid", s, err)
			}
			return
		}
		again, err := ParseSelector(sel.String())
		if err != nil || again.String() != sel.String() {
			t.Fatalf("ParseSelector(%q).String() = %q parses to %q, %v", s, sel.String(), again.String(), err)
		}
		labels := map[string]string{}
		for _, r := range sel.reqs {
			labels[r.key] = r.value
		}
		if sel.Matches(labels) != again.Matches(labels) {
			t.Fatalf("%q and its canonical form %q disagree", s, sel.String())
		}
	})
}

// FuzzParseQuantity: resources in any template never panic the parsers;
// errors are ErrInvalid; a CPU parses back from its formatted form.
func FuzzParseQuantity(f *testing.F) {
	for _, s := range []string{"500m", "0.5", "2", "1.0005", "128Mi", "1.5Gi", "128M", "8Ei", "9223372036854775807", "1e3", "-1", ".5", "5.", "0x10", "1Ki1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if m, err := ParseCPU(s); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseCPU(%q): %v is not ErrInvalid", s, err)
			}
		} else if m < 0 || m > MaxMilliCPU {
			t.Fatalf("ParseCPU(%q) = %d", s, m)
		} else if again, err := ParseCPU(FormatMilliCPU(m)); err != nil || again != m {
			t.Fatalf("ParseCPU(%q) = %d, formatted %q parses to %d, %v", s, m, FormatMilliCPU(m), again, err)
		}
		if b, err := ParseMemory(s); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseMemory(%q): %v is not ErrInvalid", s, err)
			}
		} else if b < 0 {
			t.Fatalf("ParseMemory(%q) = %d", s, b)
		}
	})
}

// FuzzParseSchedule: a Job's schedule and time zone never panic or hang
// the parser or the next-tick search; a next tick is after its start.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range [][2]string{{"*/5 * * * *", ""}, {"0 8 * * 1-5", "Europe/Berlin"}, {"@daily", "America/New_York"}, {"30 2 * * *", "Europe/Berlin"},
		{"0 0 30 2 *", ""}, {"* * * * * *", ""}, {"@every 1s", ""}, {"TZ=Asia/Tokyo 0 9 * * *", ""}, {"0 0 * * *", "../../etc/passwd"}, {"", "Local"}} {
		f.Add(s[0], s[1])
	}
	start := time.Date(2025, 3, 30, 0, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr, tz string) {
		s, err := ParseSchedule(expr, tz)
		if err != nil {
			return
		}
		if n := s.Next(start); !n.IsZero() && !n.After(start) {
			t.Fatalf("ParseSchedule(%q, %q).Next(%v) = %v", expr, tz, start, n)
		}
	})
}

// FuzzParsePortRange: --port-range never panics the parser; what parses is
// a range of real ports that prints and parses back to itself.
func FuzzParsePortRange(f *testing.F) {
	for _, s := range []string{"30000-32767", "30080", " 1 - 65535 ", "0-1", "2-1", "-1", "1-", "65536", "1-2-3", "+1-+2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParsePortRange(s)
		if err != nil {
			return
		}
		if r.Min < 1 || r.Max > 65535 || r.Min > r.Max {
			t.Fatalf("ParsePortRange(%q) = %+v", s, r)
		}
		if again, err := ParsePortRange(r.String()); err != nil || again != r {
			t.Fatalf("ParsePortRange(%q) = %v, which parses back to %v, %v", s, r, again, err)
		}
	})
}

// FuzzEscapeTerminal: whatever an instance or node wrote, the escaped
// form holds nothing a terminal acts on and escaping it again changes
// nothing.
func FuzzEscapeTerminal(f *testing.F) {
	for _, s := range []string{"plain", "\x1b]0;title\x07", "a\rb\n\tc", "\u009b2J", "\xff\xc3", "\u202egpj.exe", "\\x1b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		line, text := EscapeTerminal(s), EscapeTerminalText(s)
		if c := terminalControlIn(line, false); c != "" {
			t.Fatalf("EscapeTerminal(%q) = %q holds %s", s, line, c)
		}
		if c := terminalControlIn(text, true); c != "" {
			t.Fatalf("EscapeTerminalText(%q) = %q holds %s", s, text, c)
		}
		if EscapeTerminal(line) != line || EscapeTerminalText(text) != text {
			t.Fatalf("escaping %q twice changes it", s)
		}
	})
}
