package controlplane

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The audit log rotates between lines, keeps its backups and drops the
// oldest.
func TestAuditFileRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	line := func(i int) string { return fmt.Sprintf("{\"n\":%03d,\"pad\":\"%s\"}\n", i, strings.Repeat("x", 20)) }
	limit := int64(3 * len(line(0)))
	a, err := openAuditFile(path, limit, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := a.Write([]byte(line(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Three lines fit in a file: lines 0-2 went with the oldest backup.
	for name, want := range map[string]string{
		"audit.log":   line(9),
		"audit.log.1": line(6) + line(7) + line(8),
		"audit.log.2": line(3) + line(4) + line(5),
	} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(path), name))
		if err != nil || string(b) != want {
			t.Errorf("%s: %v\n%s\nwant\n%s", name, err, b, want)
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("a third backup exists: %v", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("audit.log mode %v, want 0600", st.Mode().Perm())
	}
	// Reopened, it continues where it was.
	a, err = openAuditFile(path, limit, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.size != int64(len(line(9))) {
		t.Errorf("reopened at size %d, want %d", a.size, len(line(9)))
	}
}
