package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// watch streams changes after ?revision=N as JSON lines. A revision the
// store has compacted away gets 410 Gone before the stream starts, or as an
// ERROR line with code 410 if discovered later. Empty BOOKMARK lines carry
// the latest revision every few seconds so idle clients can resume cheaply.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, t target) {
	rev, err := strconv.ParseInt(r.URL.Query().Get("revision"), 10, 64)
	if err != nil && r.URL.Query().Get("revision") != "" {
		writeError(w, fmt.Errorf("revision %q is not a number: %w", r.URL.Query().Get("revision"), errBadRequest))
		return
	}
	f, err := filterOf(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx := r.Context()
	streaming(w)
	events, stop, cached, err := s.caches[t.kind.Kind].subscribe(t.ns, rev, f.match)
	if err != nil {
		writeError(w, err)
		return
	}
	if cached {
		defer stop()
	} else {
		events = s.store.Watch(ctx, t.kind, t.ns, rev)
	}

	// Peek so that a compacted revision becomes a plain 410.
	var first *store.Event
	select {
	case ev, ok := <-events:
		if ok && ev.Type == api.WatchError {
			writeError(w, ev.Err)
			return
		}
		if ok {
			first = &ev
		}
	case <-time.After(50 * time.Millisecond):
	case <-ctx.Done():
		return
	}
	w.Header().Set("Content-Type", "application/json-seq")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	last := rev
	emit := func(ev store.Event) bool {
		we := api.WatchEvent{Type: ev.Type, Revision: ev.Revision}
		if ev.Type == api.WatchError {
			we.Error = statusOf(ev.Err)
		} else {
			if ev.Revision > last {
				last = ev.Revision
			}
			if !f.match(ev.Object) {
				return true
			}
			we.Object = redacted(ev.Object)
		}
		if err := enc.Encode(we); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return ev.Type != api.WatchError
	}
	if flusher != nil {
		flusher.Flush()
	}
	if first != nil && !emit(*first) {
		return
	}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok || !emit(ev) {
				return
			}
		case <-tick.C:
			if err := enc.Encode(api.WatchEvent{Type: api.WatchBookmark, Revision: last}); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		case <-ctx.Done():
			return
		}
	}
}
