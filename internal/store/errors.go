package store

import "errors"

// Errors returned by the store, wrapped with the object they concern.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the object changed since the revision the caller read.
	ErrConflict = errors.New("conflict: the object was modified; read it again and retry")
	// ErrCompacted: a watch asked for a revision the store no longer keeps;
	// list again and watch from the list's revision.
	ErrCompacted = errors.New("revision compacted")
	// ErrNotLeader: a fenced write (see Store.Fenced) after leadership
	// was lost.
	ErrNotLeader = errors.New("not the leader any more")
)
