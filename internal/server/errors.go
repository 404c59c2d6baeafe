package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// errBadRequest marks client mistakes that are not object validation
// (a bad query parameter, an unreadable body).
var errBadRequest = errors.New("bad request")

var errTooLarge = errors.New("request body too large")

// errNotEmpty marks a delete refused because objects still live inside the
// target. It is a conflict, but not ErrConflict, whose message says to read
// the object again and retry, which would not help.
var errNotEmpty = errors.New("not empty")

// errAutoscaled marks a scale refused because the App's autoscale owns its
// replicas.
var errAutoscaled = errors.New("replicas owned by autoscale")

// httpStatus is the one mapping from errors to HTTP codes.
func httpStatus(err error) (int, string) {
	switch {
	case errors.Is(err, api.ErrInvalid):
		return http.StatusUnprocessableEntity, "Invalid"
	case errors.Is(err, errUnauthenticated):
		return http.StatusUnauthorized, "Unauthorized"
	case errors.Is(err, errQuotaExceeded):
		return http.StatusForbidden, "QuotaExceeded"
	case errors.Is(err, errForbidden):
		return http.StatusForbidden, "Forbidden"
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, "TooLarge"
	case errors.Is(err, errBadRequest):
		return http.StatusBadRequest, "BadRequest"
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "NotFound"
	case errors.Is(err, store.ErrAlreadyExists):
		return http.StatusConflict, "AlreadyExists"
	case errors.Is(err, errNotEmpty):
		return http.StatusConflict, "NotEmpty"
	case errors.Is(err, errAutoscaled):
		return http.StatusConflict, "Autoscaled"
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrGuardMoved):
		return http.StatusConflict, "Conflict"
	case errors.Is(err, store.ErrCompacted):
		return http.StatusGone, "Expired"
	case errors.Is(err, errTooManyRequests):
		return http.StatusTooManyRequests, "TooManyRequests"
	case errors.Is(err, store.ErrNoSpace):
		return http.StatusInsufficientStorage, "StoreFull"
	case errors.Is(err, errNoQuorum):
		return http.StatusServiceUnavailable, "NoQuorum"
	}
	return http.StatusInternalServerError, "InternalError"
}

func writeError(w http.ResponseWriter, err error) {
	code, _ := httpStatus(err)
	if ra := (*retryAfter)(nil); errors.As(err, &ra) {
		w.Header().Set("Retry-After", ra.seconds())
	}
	writeJSON(w, code, statusOf(err))
}

// statusOf is the wire form of err.
func statusOf(err error) *api.Status {
	code, reason := httpStatus(err)
	msg := err.Error()
	if errors.Is(err, store.ErrNoSpace) {
		msg = errNoSpaceHelp + ": " + msg
	}
	return &api.Status{Code: code, Reason: reason, Message: msg}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
