package api

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// An exec session (`shoal exec`) runs over one upgraded HTTP connection,
// client ⇄ server ⇄ agent, as a sequence of frames in both directions:
// one type byte, a big-endian uint32 length, then the payload.

// FrameType says what a frame carries.
type FrameType byte

// Frame types. The client sends stdin, stdin-closed and resize frames; the
// agent sends stdout, stderr, exit and error frames. Exit or error ends the
// session.
const (
	FrameStdin       FrameType = 0
	FrameStdout      FrameType = 1
	FrameStderr      FrameType = 2
	FrameResize      FrameType = 3 // payload: width, height as uint16
	FrameExit        FrameType = 4 // payload: exit code as int32
	FrameError       FrameType = 5 // payload: message
	FrameStdinClosed FrameType = 6
)

// ExecUpgrade is the protocol name of the Upgrade header of an exec
// request, and MaxFrame the largest payload a frame may carry.
const (
	ExecUpgrade = "shoal-exec/1"
	MaxFrame    = 1 << 20
)

// ExecPath is the API path of an exec into instance name of ns; the
// command goes in ?cmd= (repeated), with ?tty=1 and ?stdin=1.
func ExecPath(ns, name string) string {
	return "/api/v1/namespaces/" + ns + "/instances/" + name + "/exec"
}

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, t FrameType, payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("frame of %d bytes: the limit is %d", len(payload), MaxFrame)
	}
	buf := make([]byte, 5+len(payload))
	buf[0] = byte(t)
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame; io.EOF means the stream ended cleanly.
func ReadFrame(r io.Reader) (FrameType, []byte, error) {
	var head [5]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(head[1:5])
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes: the limit is %d", n, MaxFrame)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return FrameType(head[0]), payload, nil
}

// ResizePayload and ParseResize encode a terminal size.
func ResizePayload(width, height uint16) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint16(b[0:2], width)
	binary.BigEndian.PutUint16(b[2:4], height)
	return b
}

// ParseResize reads a FrameResize payload.
func ParseResize(b []byte) (width, height uint16, err error) {
	if len(b) != 4 {
		return 0, 0, fmt.Errorf("resize frame of %d bytes, want 4", len(b))
	}
	return binary.BigEndian.Uint16(b[0:2]), binary.BigEndian.Uint16(b[2:4]), nil
}

// ExitPayload and ParseExit encode an exit code.
func ExitPayload(code int32) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, uint32(code))
	return b
}

// ParseExit reads a FrameExit payload.
func ParseExit(b []byte) (int32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("exit frame of %d bytes, want 4", len(b))
	}
	return int32(binary.BigEndian.Uint32(b)), nil
}
