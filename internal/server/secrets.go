package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// Secrets are sealed here, on their way into the store, and shown here, on
// their way out: the store (and so any etcd dump) holds only ciphertext,
// and a client sees values only when it asks to reveal them and may (an
// admin, or a node running an instance that uses the Secret).

var secretKind = api.MustKind(api.KindSecret)

// secretAAD binds a sealed value to its Secret: a ciphertext copied into
// another Secret does not open.
func secretAAD(ns, name string) []byte { return []byte("secret/" + ns + "/" + name) }

// sealSecrets encrypts the data of the Secrets among objs in place and
// sets their version: the stored one when the data is the same (so a
// re-apply changes nothing), one more when it changed.
func (s *Server) sealSecrets(ctx context.Context, objs []api.Object) error {
	for _, o := range objs {
		sec, ok := o.(*api.Secret)
		if !ok {
			continue
		}
		if s.secretKeys == nil {
			return fmt.Errorf("this server keeps no secret keys: %w", errBadRequest)
		}
		m := &sec.Metadata
		if sec.Spec.Sealed != nil {
			return &api.InvalidError{Kind: api.KindSecret, Name: m.Name, Errors: []api.FieldError{{Path: "spec.sealed", Message: "is written by the server: send spec.data"}}}
		}
		plain, err := json.Marshal(sec.Spec.Data) // map keys sorted: the same data, the same bytes
		if err != nil {
			return err
		}
		aad := secretAAD(m.Namespace, m.Name)
		var version int64 = 1
		obj, err := s.store.Get(ctx, secretKind, m.Namespace, m.Name)
		switch {
		case err == nil:
			old := obj.(*api.Secret)
			version = old.Status.Version + 1
			if old.Spec.Sealed != nil {
				if prev, err := s.secretKeys.Open(old.Spec.Sealed.KeyID, old.Spec.Sealed.Value, aad); err == nil && bytes.Equal(prev, plain) {
					sec.Spec.Data, sec.Spec.Sealed, sec.Status = nil, old.Spec.Sealed, old.Status
					continue
				}
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		keyID, blob, err := s.secretKeys.Seal(plain, aad)
		if err != nil {
			return err
		}
		sec.Spec.Sealed = &api.SealedData{KeyID: keyID, Value: blob, Keys: sec.SecretKeys()}
		sec.Spec.Data = nil
		sec.Status.Version = version
	}
	return nil
}

// present is an object as a response shows it: a Secret's values redacted,
// or opened when the request asks to reveal them (?reveal=1; the guard
// decided who may).
func (s *Server) present(r *http.Request, obj api.Object) (api.Object, error) {
	sec, ok := obj.(*api.Secret)
	if !ok {
		return obj, nil
	}
	if r.URL.Query().Get("reveal") == "" || sec.Spec.Sealed == nil {
		return redacted(sec), nil
	}
	out := *sec
	out.Spec.Sealed, out.Spec.Data = nil, map[string]string{}
	if s.secretKeys == nil {
		return nil, fmt.Errorf("this server keeps no secret keys: %w", errBadRequest)
	}
	plain, err := s.secretKeys.Open(sec.Spec.Sealed.KeyID, sec.Spec.Sealed.Value, secretAAD(sec.Metadata.Namespace, sec.Metadata.Name))
	if err != nil {
		return nil, fmt.Errorf("secret %q in namespace %q: %v", sec.Metadata.Name, sec.Metadata.Namespace, err)
	}
	if err := json.Unmarshal(plain, &out.Spec.Data); err != nil {
		return nil, err
	}
	return &out, nil
}

// redacted is obj with any secret values hidden, for diffs and logs.
func redacted(obj api.Object) api.Object {
	sec, ok := obj.(*api.Secret)
	if !ok {
		return obj
	}
	out := *sec
	out.Spec.Sealed = nil
	out.Spec.Data = map[string]string{}
	for _, k := range sec.SecretKeys() {
		out.Spec.Data[k] = api.Redacted
	}
	return &out
}

// rotateSecretKey makes a new current key and seals every Secret again
// with it; the old keys still open what is not re-sealed yet. Versions do
// not change: no App restarts for a rotation.
func (s *Server) rotateSecretKey(w http.ResponseWriter, r *http.Request) {
	if s.secretKeys == nil {
		writeError(w, fmt.Errorf("this server keeps no secret keys: %w", errBadRequest))
		return
	}
	id, err := s.secretKeys.Rotate()
	if err == nil {
		// The other servers learn the key before they meet a Secret
		// sealed with it.
		err = s.publishSecretKeys(r.Context())
	}
	if err != nil {
		writeError(w, err)
		return
	}
	objs, _, err := s.store.List(r.Context(), secretKind, "")
	if err != nil {
		writeError(w, err)
		return
	}
	n := 0
	for _, o := range objs {
		m := o.GetMeta()
		_, err := s.store.Mutate(r.Context(), secretKind, m.Namespace, m.Name, func(cur api.Object) error {
			sec := cur.(*api.Secret)
			if sec.Spec.Sealed == nil || sec.Spec.Sealed.KeyID == id {
				return nil
			}
			aad := secretAAD(m.Namespace, m.Name)
			plain, err := s.secretKeys.Open(sec.Spec.Sealed.KeyID, sec.Spec.Sealed.Value, aad)
			if err != nil {
				return fmt.Errorf("secret %q in namespace %q: %v", m.Name, m.Namespace, err)
			}
			keyID, blob, err := s.secretKeys.Seal(plain, aad)
			if err != nil {
				return err
			}
			sec.Spec.Sealed.KeyID, sec.Spec.Sealed.Value = keyID, blob
			return nil
		})
		if err != nil {
			writeError(w, err)
			return
		}
		n++
	}
	s.log.Info("secret key rotated", "key", id, "secrets", n)
	writeJSON(w, http.StatusOK, map[string]any{"key": id, "resealed": n})
}

// The servers share their secret keys through the store, sealed with a
// key only servers can derive (from the CA key): a key one server makes
// (rotate-key) reaches the others, and an etcd dump alone opens nothing.

const secretKeysPurpose = "secret keys"

// publishSecretKeys stores this server's secret keys for the others.
func (s *Server) publishSecretKeys(ctx context.Context) error {
	if s.ca == nil {
		return nil // handler tests: one server, no CA
	}
	sealed, err := s.ca.SealForServers(s.secretKeys.Export(), secretKeysPurpose)
	if err != nil {
		return err
	}
	return s.store.PutSecretKeys(ctx, sealed)
}

// followSecretKeys takes in the keys other servers publish, and publishes
// the union when this server knows a key the stored set lacks, until ctx
// ends.
func (s *Server) followSecretKeys(ctx context.Context) {
	take := func(sealed []byte) error {
		plain, err := s.ca.OpenForServers(sealed, secretKeysPurpose)
		if err != nil {
			return fmt.Errorf("the stored secret keys do not open with this cluster's CA: %w", err)
		}
		if changed, err := s.secretKeys.Merge(plain); err != nil {
			return err
		} else if changed {
			s.log.Info("secret keys from another server", "current", s.secretKeys.Current())
		}
		if !s.secretKeys.Covers(plain) {
			return s.publishSecretKeys(ctx)
		}
		return nil
	}
	for ctx.Err() == nil {
		err := s.store.FollowSecretKeys(ctx, func(sealed []byte) error {
			if sealed == nil {
				return s.publishSecretKeys(ctx)
			}
			return take(sealed)
		})
		if err != nil && ctx.Err() == nil {
			s.log.Warn("following the servers' secret keys; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
