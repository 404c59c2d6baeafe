package controlplane

import (
	"fmt"
	"os"
	"sync"
)

// auditFile is the audit log on disk: it appends, and when the next write
// would take it past maxBytes it becomes PATH.1 (PATH.1 becomes PATH.2,
// and so on; the oldest of backups is dropped) and a new PATH starts. The
// server writes one whole JSON line per Write, so files split between
// lines.
type auditFile struct {
	path     string
	maxBytes int64
	backups  int

	mu   sync.Mutex
	f    *os.File
	size int64
}

func openAuditFile(path string, maxBytes int64, backups int) (*auditFile, error) {
	a := &auditFile{path: path, maxBytes: maxBytes, backups: max(backups, 1)}
	if err := a.open(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *auditFile) open() error {
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	a.f, a.size = f, st.Size()
	return nil
}

func (a *auditFile) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return 0, fmt.Errorf("audit log %s is closed", a.path)
	}
	if a.maxBytes > 0 && a.size > 0 && a.size+int64(len(p)) > a.maxBytes {
		if err := a.rotate(); err != nil {
			return 0, fmt.Errorf("rotate audit log: %w", err)
		}
	}
	n, err := a.f.Write(p)
	a.size += int64(n)
	return n, err
}

// rotate shifts the backups up by one and starts an empty file.
func (a *auditFile) rotate() error {
	if err := a.f.Close(); err != nil {
		return err
	}
	a.f = nil
	for i := a.backups - 1; i >= 1; i-- {
		if err := os.Rename(fmt.Sprintf("%s.%d", a.path, i), fmt.Sprintf("%s.%d", a.path, i+1)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if err := os.Rename(a.path, a.path+".1"); err != nil {
		return err
	}
	return a.open()
}

func (a *auditFile) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}
