package api

import (
	"errors"
	"testing"
)

func TestParseCPU(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"500m", 500},
		{"0.5", 500},
		{"2", 2000},
		{"1.25", 1250},
		{"0", 0},
		{"0m", 0},
		{"1m", 1},
		{"0.001", 1},
		{"1.2500", 1250}, // trailing zeros below a millicore are harmless
		{"007", 7000},
		{"1000000", 1_000_000_000},
		{"1000000000m", 1_000_000_000},
	}
	for _, tc := range good {
		got, err := ParseCPU(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseCPU(%q) = %d, %v; want %d, nil", tc.in, got, err, tc.want)
		}
	}

	const notCPU = ": not a CPU quantity (use cores like 0.5 or millicores like 500m)"
	bad := []struct{ in, want string }{
		{"", `""` + notCPU},
		{"abc", `"abc"` + notCPU},
		{"m", `"m"` + notCPU},
		{".5", `".5"` + notCPU},
		{"1.", `"1."` + notCPU},
		{"1e3", `"1e3"` + notCPU},
		{" 1", `" 1"` + notCPU},
		{"+1", `"+1"` + notCPU},
		{"1 m", `"1 m"` + notCPU},
		{"500M", `"500M"` + notCPU},
		{"-abc", `"-abc"` + notCPU},
		{"-1", `"-1": CPU must not be negative`},
		{"-500m", `"-500m": CPU must not be negative`},
		{"0.0005", `"0.0005": CPU is counted in millicores; use at most 3 decimal places`},
		{"0.5m", `"0.5m": CPU is counted in whole millicores (use e.g. 500m)`},
		{"1000001", `"1000001": CPU must be at most 1000000 cores`},
		{"1000000.001", `"1000000.001": CPU must be at most 1000000 cores`},
		{"1000000001m", `"1000000001m": CPU must be at most 1000000 cores`},
		{"99999999999999999999999", `"99999999999999999999999": CPU must be at most 1000000 cores`},
		{"99999999999999999999999m", `"99999999999999999999999m": CPU must be at most 1000000 cores`},
	}
	for _, tc := range bad {
		got, err := ParseCPU(tc.in)
		if err == nil {
			t.Errorf("ParseCPU(%q) = %d, nil; want error %q", tc.in, got, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("ParseCPU(%q) error\n got: %s\nwant: %s", tc.in, err, tc.want)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseCPU(%q) error does not match ErrInvalid", tc.in)
		}
	}
}

func TestParseMemory(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"128Mi", 128 << 20},
		{"1Gi", 1 << 30},
		{"512Ki", 512 << 10},
		{"1Ti", 1 << 40},
		{"1Pi", 1 << 50},
		{"7Ei", 7 << 60},
		{"1048576", 1 << 20},
		{"0", 0},
		{"1.5Gi", 3 << 29},
		{"0.5Ki", 512},
		{"128M", 128e6},
		{"1k", 1000},
		{"1G", 1e9},
		{"1.5G", 15e8},
		{"9223372036854775807", 1<<63 - 1},
	}
	for _, tc := range good {
		got, err := ParseMemory(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d, nil", tc.in, got, err, tc.want)
		}
	}

	const useMi = ": not a memory quantity (use Mi/Gi, e.g. 128Mi)"
	bad := []struct{ in, want string }{
		{"128MB", `"128MB"` + useMi},
		{"1GB", `"1GB"` + useMi},
		{"128mb", `"128mb"` + useMi},
		{"1g", `"1g"` + useMi},
		{"1gi", `"1gi"` + useMi},
		{"128m", `"128m"` + useMi}, // milli-bytes in Kubernetes; never what was meant
		{"1K", `"1K"` + useMi},
		{"1MiB", `"1MiB"` + useMi},
		{"", `""` + useMi},
		{"Mi", `"Mi"` + useMi},
		{"abc", `"abc"` + useMi},
		{"1.5.5Gi", `"1.5.5Gi"` + useMi},
		{".5Gi", `".5Gi"` + useMi},
		{"1 Gi", `"1 Gi"` + useMi},
		{"-1Mi", `"-1Mi": memory must not be negative`},
		{"0.5", `"0.5": not a whole number of bytes`},
		{"0.1Ki", `"0.1Ki": not a whole number of bytes`},
		{"8Ei", `"8Ei": memory must be less than 8Ei`},
		{"9223372036854775808", `"9223372036854775808": memory must be less than 8Ei`},
		{"99999999999999999999999Gi", `"99999999999999999999999Gi": memory must be less than 8Ei`},
		{"10E", `"10E": memory must be less than 8Ei`},
	}
	for _, tc := range bad {
		got, err := ParseMemory(tc.in)
		if err == nil {
			t.Errorf("ParseMemory(%q) = %d, nil; want error %q", tc.in, got, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("ParseMemory(%q) error\n got: %s\nwant: %s", tc.in, err, tc.want)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseMemory(%q) error does not match ErrInvalid", tc.in)
		}
	}
}

func TestFormatMilliCPU(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{500, "500m"}, {2000, "2"}, {0, "0"}, {1250, "1250m"}, {1, "1m"}, {1_000_000_000, "1000000"},
	} {
		got := FormatMilliCPU(tc.in)
		if got != tc.want {
			t.Errorf("FormatMilliCPU(%d) = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := ParseCPU(got); err != nil || back != tc.in {
			t.Errorf("ParseCPU(FormatMilliCPU(%d)) = %d, %v; want it back", tc.in, back, err)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{128 << 20, "128Mi"},
		{1 << 30, "1Gi"},
		{3 << 29, "1.5Gi"},
		{1536, "1.5Ki"},
		{1000, "1000"},
		{0, "0"},
		{1 << 40, "1Ti"},
		{16_700_000_000, "15.6Gi"}, // rounded, for display
		{1<<63 - 1, "8Ei"},
	} {
		if got := FormatBytes(tc.in); got != tc.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Exact values parse back.
	for _, b := range []int64{0, 1000, 1536, 128 << 20, 3 << 29, 5 << 40} {
		if back, err := ParseMemory(FormatBytes(b)); err != nil || back != b {
			t.Errorf("ParseMemory(FormatBytes(%d)) = %d, %v; want it back", b, back, err)
		}
	}
}
