package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const root = "/shoal/"

// Store keeps shoal objects in etcd.
type Store struct {
	cli *clientv3.Client
	now func() time.Time
	// fence, when set, is a condition every write must meet as well: the
	// controllers' view of the store writes only while its server leads.
	fence *fence
	// guards, when set, must not have moved since they were read, and
	// every write moves them (Guarded).
	guards []Guard

	leaseMu sync.Mutex
	leases  map[time.Duration]sharedLease // for CreateWithTTL
}

// sharedLease is one etcd lease that objects created within a tenth of its
// TTL share: a lease per event would cost a round trip per event.
type sharedLease struct {
	id      clientv3.LeaseID
	granted time.Time
}

// newStore returns a Store over an etcd client.
func newStore(cli *clientv3.Client) *Store {
	return &Store{cli: cli, now: time.Now}
}

// Close closes the store's connection to etcd (that of an Embedded
// member closes with it).
func (s *Store) Close() error { return s.cli.Close() }

// WithClock returns a view of the store that stamps createdAt from now
// instead of the wall clock (tests that drive controllers with an
// injected clock).
func (s *Store) WithClock(now func() time.Time) *Store {
	return &Store{cli: s.cli, now: now, fence: s.fence, guards: s.guards}
}

type fence struct {
	key string
	rev int64
}

// Fenced returns a view of the store whose writes succeed only while key
// still exists with create revision rev (a leader's election key); once it
// does not, writes fail with ErrNotLeader. Reads are unchanged.
func (s *Store) Fenced(key string, rev int64) *Store {
	return &Store{cli: s.cli, now: s.now, fence: &fence{key, rev}, guards: s.guards}
}

// commit runs one write transaction, with the fence if there is one. A
// transaction that failed because of the fence returns ErrNotLeader.
func (s *Store) commit(ctx context.Context, cmps []clientv3.Cmp, then, els []clientv3.Op) (*clientv3.TxnResponse, error) {
	if s.fence != nil {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.fence.key), "=", s.fence.rev))
	}
	if len(s.guards) > 0 {
		gc, gp := s.guardOps()
		cmps, then = append(cmps[:len(cmps):len(cmps)], gc...), append(then[:len(then):len(then)], gp...)
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
	if err != nil || resp.Succeeded {
		return resp, err
	}
	if err := s.guardsMoved(ctx); err != nil {
		return nil, err
	}
	if s.fence == nil {
		return resp, nil
	}
	f, err := s.cli.Get(ctx, s.fence.key)
	if err != nil {
		return nil, err
	}
	if len(f.Kvs) == 0 || f.Kvs[0].CreateRevision != s.fence.rev {
		return nil, ErrNotLeader
	}
	return resp, nil
}

// Key returns the etcd key of an object.
func Key(k api.KindInfo, ns, name string) string {
	if !k.Namespaced {
		return root + k.Plural + "/" + name
	}
	return root + k.Plural + "/" + ns + "/" + name
}

// prefix returns the key prefix that lists kind k in namespace ns (all
// namespaces when ns is empty).
func prefix(k api.KindInfo, ns string) string {
	if !k.Namespaced || ns == "" {
		return root + k.Plural + "/"
	}
	return root + k.Plural + "/" + ns + "/"
}

func keyOf(obj api.Object) (api.KindInfo, string, error) {
	k, ok := api.LookupKind(string(obj.GetTypeMeta().Kind))
	if !ok {
		return k, "", fmt.Errorf("unknown kind %q", obj.GetTypeMeta().Kind)
	}
	m := obj.GetMeta()
	return k, Key(k, m.Namespace, m.Name), nil
}

func describe(k api.KindInfo, ns, name string) string {
	if k.Namespaced {
		return fmt.Sprintf("%s %q in namespace %q", k.Kind, name, ns)
	}
	return fmt.Sprintf("%s %q", k.Kind, name)
}

func describeObj(obj api.Object) string {
	m := obj.GetMeta()
	k, _ := api.LookupKind(string(obj.GetTypeMeta().Kind))
	if k.Kind == "" {
		k.Kind = obj.GetTypeMeta().Kind
	}
	return describe(k, m.Namespace, m.Name)
}

// encode stores everything but the revision, which etcd keeps for us.
func encode(obj api.Object) (string, error) {
	m := obj.GetMeta()
	rev := m.Revision
	m.Revision = 0
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<" would otherwise take six bytes
	err := enc.Encode(obj)
	m.Revision = rev
	return strings.TrimSuffix(buf.String(), "\n"), err
}

// StoredSize is how many bytes obj takes as a stored value (the key and
// etcd's own overhead aside): what a namespace's bytes quota counts.
func StoredSize(obj api.Object) int {
	v, err := encode(obj)
	if err != nil {
		return 0
	}
	return len(v)
}

func decode(k api.KindInfo, value []byte, modRev int64) (api.Object, error) {
	obj := k.New()
	if err := json.Unmarshal(value, obj); err != nil {
		return nil, fmt.Errorf("stored %s is corrupt: %w", k.Kind, err)
	}
	obj.GetMeta().Revision = modRev
	return obj, nil
}

func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Get reads one object.
func (s *Store) Get(ctx context.Context, k api.KindInfo, ns, name string) (api.Object, error) {
	resp, err := s.cli.Get(ctx, Key(k, ns, name))
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%s: %w", describe(k, ns, name), ErrNotFound)
	}
	kv := resp.Kvs[0]
	return decode(k, kv.Value, kv.ModRevision)
}

// List reads every object of kind k in namespace ns ("" for all) and the
// store revision the list was read at, to watch from.
func (s *Store) List(ctx context.Context, k api.KindInfo, ns string) ([]api.Object, int64, error) {
	return s.ListFiltered(ctx, k, ns, nil)
}

// ListFiltered is List without decoding the objects whose stored JSON raw
// does not accept (nil: all), a cheap first cut such as "mentions this
// app"; the caller still checks the decoded objects exactly.
func (s *Store) ListFiltered(ctx context.Context, k api.KindInfo, ns string, raw func([]byte) bool) ([]api.Object, int64, error) {
	resp, err := s.cli.Get(ctx, prefix(k, ns), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	out := make([]api.Object, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if raw != nil && !raw(kv.Value) {
			continue
		}
		obj, err := decode(k, kv.Value, kv.ModRevision)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", kv.Key, err)
		}
		out = append(out, obj)
	}
	return out, resp.Header.Revision, nil
}

// Create stores a new object; it fails with ErrAlreadyExists if the name is
// taken. It sets uid, createdAt and revision on obj.
func (s *Store) Create(ctx context.Context, obj api.Object) error {
	key, val, err := s.prepareCreate(obj)
	if err != nil {
		return err
	}
	m := obj.GetMeta()
	resp, err := s.commit(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
		[]clientv3.Op{clientv3.OpPut(key, val)}, nil)
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("%s: %w", describeObj(obj), ErrAlreadyExists)
	}
	m.Revision = resp.Header.Revision
	return nil
}

// prepareCreate gives a new object its uid and creation time and returns
// its key and stored value.
func (s *Store) prepareCreate(obj api.Object) (key, val string, err error) {
	if _, key, err = keyOf(obj); err != nil {
		return "", "", err
	}
	m := obj.GetMeta()
	m.UID = newUID()
	m.CreatedAt = s.now().UTC().Truncate(time.Second)
	val, err = encode(obj)
	return key, val, err
}

// Update writes obj if the stored object is still at obj.metadata.revision
// (compare-and-swap, one round trip); otherwise it returns ErrConflict, or
// ErrNotFound. The caller read obj from the store, so its uid and createdAt
// are the stored ones.
func (s *Store) Update(ctx context.Context, obj api.Object) error {
	_, key, err := keyOf(obj)
	if err != nil {
		return err
	}
	m := obj.GetMeta()
	if m.Revision == 0 {
		return fmt.Errorf("%s: update without metadata.revision: %w", describeObj(obj), ErrConflict)
	}
	val, err := encode(obj)
	if err != nil {
		return err
	}
	resp, err := s.commit(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", m.Revision)},
		[]clientv3.Op{clientv3.OpPut(key, val)}, []clientv3.Op{clientv3.OpGet(key, clientv3.WithKeysOnly())})
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return fmt.Errorf("%s: %w", describeObj(obj), ErrNotFound)
		}
		return fmt.Errorf("%s (revision %d, stored %d): %w", describeObj(obj), m.Revision, kvs[0].ModRevision, ErrConflict)
	}
	m.Revision = resp.Header.Revision
	return nil
}

// Mutate reads an object, applies fn to it and writes it back with
// compare-and-swap, retrying when another writer got there first. fn may be
// called several times; returning an error aborts without writing.
func (s *Store) Mutate(ctx context.Context, k api.KindInfo, ns, name string, fn func(api.Object) error) (api.Object, error) {
	for attempt := 0; ; attempt++ {
		obj, err := s.Get(ctx, k, ns, name)
		if err != nil {
			return nil, err
		}
		if err := fn(obj); err != nil {
			return nil, err
		}
		err = s.Update(ctx, obj)
		if err == nil {
			return obj, nil
		}
		if !isConflict(err) || attempt >= 50 {
			return nil, err
		}
	}
}

// Delete removes an object. With revision > 0 it only deletes that
// revision (ErrConflict otherwise).
func (s *Store) Delete(ctx context.Context, k api.KindInfo, ns, name string, revision int64) error {
	key := Key(k, ns, name)
	cmp := clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
	if revision > 0 {
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", revision)
	}
	resp, err := s.commit(ctx, []clientv3.Cmp{cmp}, []clientv3.Op{clientv3.OpDelete(key)}, []clientv3.Op{clientv3.OpGet(key)})
	if err != nil {
		return err
	}
	if resp.Succeeded {
		return nil
	}
	if len(resp.Responses) > 0 && len(resp.Responses[0].GetResponseRange().Kvs) > 0 {
		return fmt.Errorf("%s (revision %d): %w", describe(k, ns, name), revision, ErrConflict)
	}
	return fmt.Errorf("%s: %w", describe(k, ns, name), ErrNotFound)
}

// ApplyResult says what Apply did with one object.
type ApplyResult struct {
	Object api.Object
	// Action is api.ApplyCreated, api.ApplyConfigured or api.ApplyUnchanged.
	Action string
	// Previous is what was stored before (nil for ApplyCreated).
	Previous api.Object
}

// Apply creates or updates every object in one transaction: either all are
// written or none. An existing object keeps its uid, createdAt and status;
// its spec, labels and everything else come from the new object. If another
// writer changes one of the objects meanwhile, Apply reads again and retries.
func (s *Store) Apply(ctx context.Context, objs []api.Object) ([]ApplyResult, error) {
	for attempt := 0; ; attempt++ {
		res, err := s.applyOnce(ctx, objs, false)
		if err == nil || !isConflict(err) || attempt >= 20 {
			return res, err
		}
	}
}

// DryRunApply says what Apply would do with objs now, and writes nothing.
func (s *Store) DryRunApply(ctx context.Context, objs []api.Object) ([]ApplyResult, error) {
	return s.applyOnce(ctx, objs, true)
}

func (s *Store) applyOnce(ctx context.Context, objs []api.Object, dryRun bool) ([]ApplyResult, error) {
	keys := make([]string, len(objs))
	seen := map[string]int{}
	for i, obj := range objs {
		_, key, err := keyOf(obj)
		if err != nil {
			return nil, err
		}
		if j, dup := seen[key]; dup {
			return nil, fmt.Errorf("documents %d and %d both define %s", j+1, i+1, describeObj(obj))
		}
		seen[key] = i
		keys[i] = key
	}
	// Read the current values in one consistent snapshot.
	gets := make([]clientv3.Op, len(keys))
	for i, key := range keys {
		gets[i] = clientv3.OpGet(key)
	}
	cur, err := s.cli.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return nil, err
	}
	var cmps []clientv3.Cmp
	var puts []clientv3.Op
	results := make([]ApplyResult, len(objs))
	for i, obj := range objs {
		k, _ := api.LookupKind(string(obj.GetTypeMeta().Kind))
		kvs := cur.Responses[i].GetResponseRange().Kvs
		m := obj.GetMeta()
		if len(kvs) == 0 {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(keys[i]), "=", 0))
			m.UID = newUID()
			m.CreatedAt = s.now().UTC().Truncate(time.Second)
			results[i].Action = api.ApplyCreated
		} else {
			old, err := decode(k, kvs[0].Value, kvs[0].ModRevision)
			if err != nil {
				return nil, err
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(keys[i]), "=", kvs[0].ModRevision))
			m.UID = old.GetMeta().UID
			m.CreatedAt = old.GetMeta().CreatedAt
			m.DeletedAt = old.GetMeta().DeletedAt
			api.CopyStatus(old, obj)
			m.Revision = 0
			results[i].Previous = old
			if newVal, _ := encode(obj); newVal == string(kvs[0].Value) {
				m.Revision = kvs[0].ModRevision
				results[i] = ApplyResult{Object: obj, Action: api.ApplyUnchanged, Previous: old}
				continue
			}
			results[i].Action = api.ApplyConfigured
		}
		val, err := encode(obj)
		if err != nil {
			return nil, err
		}
		puts = append(puts, clientv3.OpPut(keys[i], val))
		results[i].Object = obj
	}
	if len(puts) == 0 || dryRun {
		return results, nil
	}
	resp, err := s.commit(ctx, cmps, puts, nil)
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("apply: %w", ErrConflict)
	}
	for i := range results {
		if results[i].Action != api.ApplyUnchanged {
			objs[i].GetMeta().Revision = resp.Header.Revision
		}
	}
	return results, nil
}

func isConflict(err error) bool {
	return errors.Is(err, ErrConflict)
}

// CreateWithTTL stores a new object that the store removes after ttl
// (events). The name must be unique; it is not checked.
func (s *Store) CreateWithTTL(ctx context.Context, obj api.Object, ttl time.Duration) error {
	key, val, err := s.prepareCreate(obj)
	if err != nil {
		return err
	}
	m := obj.GetMeta()
	lease, err := s.lease(ctx, ttl)
	if err != nil {
		return err
	}
	resp, err := s.cli.Put(ctx, key, val, clientv3.WithLease(lease))
	if err != nil {
		s.leaseMu.Lock()
		delete(s.leases, ttl) // perhaps expired or revoked: grant anew next time
		s.leaseMu.Unlock()
		return err
	}
	m.Revision = resp.Header.Revision
	return nil
}

// lease returns a lease that lives about ttl (at least 90% of it).
func (s *Store) lease(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, error) {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if l, ok := s.leases[ttl]; ok && s.now().Sub(l.granted) < ttl/10 {
		return l.id, nil
	}
	g, err := s.cli.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return 0, err
	}
	if s.leases == nil {
		s.leases = map[time.Duration]sharedLease{}
	}
	s.leases[ttl] = sharedLease{g.ID, s.now()}
	return g.ID, nil
}

// CreateAll creates every object in one transaction, or none: it fails
// with ErrAlreadyExists if any name is taken. It sets uid, createdAt and
// revision on each object.
func (s *Store) CreateAll(ctx context.Context, objs []api.Object) error {
	if len(objs) == 0 {
		return nil
	}
	cmps := make([]clientv3.Cmp, 0, len(objs))
	puts := make([]clientv3.Op, 0, len(objs))
	for _, obj := range objs {
		key, val, err := s.prepareCreate(obj)
		if err != nil {
			return err
		}
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		puts = append(puts, clientv3.OpPut(key, val))
	}
	resp, err := s.commit(ctx, cmps, puts, nil)
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("%d objects: one of them %w", len(objs), ErrAlreadyExists)
	}
	for _, obj := range objs {
		obj.GetMeta().Revision = resp.Header.Revision
	}
	return nil
}

// UpdateAll replaces every object in one transaction if each one's stored
// revision still equals its metadata.revision, or none (ErrConflict).
// Unlike Update it does not re-read uid and createdAt: the objects must
// come from the store.
func (s *Store) UpdateAll(ctx context.Context, objs []api.Object) error {
	if len(objs) == 0 {
		return nil
	}
	cmps := make([]clientv3.Cmp, 0, len(objs))
	puts := make([]clientv3.Op, 0, len(objs))
	for _, obj := range objs {
		_, key, err := keyOf(obj)
		if err != nil {
			return err
		}
		val, err := encode(obj)
		if err != nil {
			return err
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", obj.GetMeta().Revision))
		puts = append(puts, clientv3.OpPut(key, val))
	}
	resp, err := s.commit(ctx, cmps, puts, nil)
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("%d objects: one of them changed: %w", len(objs), ErrConflict)
	}
	for _, obj := range objs {
		obj.GetMeta().Revision = resp.Header.Revision
	}
	return nil
}

// Claim records value as the owner of key if nobody owns it yet, and
// reports whether value owns it now (it may already have). Claims are how
// controllers hand out unique things, such as service IPs, without races.
func (s *Store) Claim(ctx context.Context, key, value string) (bool, error) {
	k := "/shoal-claims/" + key
	resp, err := s.commit(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)},
		[]clientv3.Op{clientv3.OpPut(k, value)}, []clientv3.Op{clientv3.OpGet(k)})
	if err != nil {
		return false, err
	}
	if resp.Succeeded {
		return true, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	return len(kvs) > 0 && string(kvs[0].Value) == value, nil
}

// Claims lists the claims under prefix: key (without prefix) to owner.
func (s *Store) Claims(ctx context.Context, prefix string) (map[string]string, error) {
	p := "/shoal-claims/" + prefix
	resp, err := s.cli.Get(ctx, p, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), p)] = string(kv.Value)
	}
	return out, nil
}

// Unclaim releases key if value owns it.
func (s *Store) Unclaim(ctx context.Context, key, value string) error {
	k := "/shoal-claims/" + key
	_, err := s.commit(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.Value(k), "=", value)},
		[]clientv3.Op{clientv3.OpDelete(k)}, nil)
	return err
}
