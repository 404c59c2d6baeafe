package agent

import (
	"context"
	"github.com/shoal-dev/shoal/internal/pki"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// guard admits, when the agent serves TLS, only the cluster's servers to
// logs and exec (users reach them through a server, which checks their
// role and revocation and audits them), and admins to metrics too (for a
// scraper): an admin certificate a server has revoked opens no log or
// shell here, and nothing else reaches the agent.
func (a *Agent) guard(h http.Handler) http.Handler {
	if a.cfg.TLS == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "a client certificate from this cluster's CA is required", http.StatusUnauthorized)
			return
		}
		id := pki.IdentityOf(r.TLS.VerifiedChains[0][0])
		metrics := r.Method == http.MethodGet && r.URL.Path == "/metrics"
		switch {
		case id.In(pki.GroupServers):
		case metrics && id.In(pki.GroupAdmins):
		case id.In(pki.GroupAdmins):
			http.Error(w, id.Name+" may not reach a node's logs or exec directly: use shoal logs and shoal exec, through a server", http.StatusForbidden)
			return
		default:
			http.Error(w, id.Name+" may not reach a node's agent: only servers (and admins, for metrics) may", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// logHandler serves GET /logs/{namespace}/{name}?tail=N&follow=1&previous=1
// from the instance's log files (current.log, its size-rotated
// current.log.1, and current.log.previous from the run before).
func (a *Agent) logHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.handler())
	mux.HandleFunc("POST /exec/{ns}/{name}", a.serveExec)
	mux.HandleFunc("GET /logs/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.PathValue("ns"), r.PathValue("name")
		if filepath.Base(ns) != ns || filepath.Base(name) != name || ns == ".." || name == ".." {
			http.Error(w, "bad instance name", http.StatusBadRequest)
			return
		}
		q := r.URL.Query()
		tail := -1
		if v := q.Get("tail"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				http.Error(w, "tail must be a number", http.StatusBadRequest)
				return
			}
			tail = n
		}
		path := filepath.Join(a.logDir(ns, name), "current.log")
		if q.Get("previous") != "" {
			path += ".previous"
		}
		if _, err := os.Stat(path); err != nil {
			msg := `{"code":404,"reason":"NotFound","message":"no logs for instance ` + strconv.Quote(name) + ` on this node"}`
			if q.Get("previous") != "" {
				msg = `{"code":404,"reason":"NotFound","message":"instance ` + strconv.Quote(name) + ` has no previous run"}`
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, msg)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if q.Get("follow") != "" {
			rc := http.NewResponseController(w)
			_ = rc.SetWriteDeadline(time.Time{})
		}
		serveLog(r, w, path, tail, q.Get("follow") != "")
	})
	return mux
}

func serveLog(r *http.Request, w http.ResponseWriter, path string, tail int, follow bool) {
	flusher, _ := w.(http.Flusher)
	// Older, size-rotated content first, so tail can reach into it.
	var data []byte
	if old, err := os.ReadFile(path + ".1"); err == nil {
		data = old
	}
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer func() { f.Close() }()
	cur, _ := io.ReadAll(f)
	data = append(data, cur...)
	if tail >= 0 {
		data = lastLines(data, tail)
	}
	_, _ = w.Write(data)
	if flusher != nil {
		flusher.Flush()
	}
	if !follow {
		return
	}
	offset := int64(len(cur))
	buf := make([]byte, 32<<10)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
		// Rotated or truncated: start over on the new file.
		if st, err := os.Stat(path); err == nil && (st.Size() < offset || !sameFile(f, st)) {
			nf, err := os.Open(path)
			if err != nil {
				continue
			}
			f.Close()
			f, offset = nf, 0
		}
		for {
			n, err := f.ReadAt(buf, offset)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				offset += int64(n)
			}
			if err != nil || n == 0 {
				break
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}

// Log rotation: the container's shim appends to current.log (O_APPEND);
// past MaxLogBytes the agent copies it to current.log.1 and truncates it,
// so a log never takes more than about twice that on disk. Lines written
// between the copy and the truncate (microseconds) can be lost, as with
// logrotate's copytruncate.
const (
	MaxLogBytes   = 10 << 20
	rotateEvery   = 5 * time.Second
	rotateMinimum = 64 << 10
)

func (a *Agent) rotateLoop(ctx context.Context) {
	t := time.NewTicker(rotateEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		paths, _ := filepath.Glob(filepath.Join(a.cfg.DataDir, "logs", "*", "*", "current.log"))
		for _, p := range paths {
			if err := rotateLog(p, a.maxLogBytes()); err != nil {
				a.log.Warn("rotate log", "path", p, "err", err)
			}
		}
	}
}

func (a *Agent) maxLogBytes() int64 {
	if a.cfg.MaxLogBytes > 0 {
		return max(a.cfg.MaxLogBytes, rotateMinimum)
	}
	return MaxLogBytes
}

// rotateLog copies path to path.1 and truncates path when it is larger
// than limit.
func rotateLog(path string, limit int64) error {
	st, err := os.Stat(path)
	if err != nil || st.Size() <= limit {
		return nil
	}
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := path + ".1.tmp"
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	if err := os.Truncate(path, 0); err != nil {
		return err
	}
	return os.Rename(tmp, path+".1")
}

func sameFile(f *os.File, st os.FileInfo) bool {
	fst, err := f.Stat()
	return err == nil && os.SameFile(fst, st)
}

// lastLines returns the last n lines of data.
func lastLines(data []byte, n int) []byte {
	if n == 0 {
		return nil
	}
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	count := 0
	for i := end - 1; i >= 0; i-- {
		if data[i] == '\n' {
			count++
			if count == n {
				return data[i+1:]
			}
		}
	}
	return data
}
