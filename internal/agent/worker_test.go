package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/runtime/fake"
)

// fakeAPI is the part of the API server a worker uses: instance status
// writes and the final delete. It keeps what it was sent.
type fakeAPI struct {
	mu       sync.Mutex
	statuses []sentStatus
	deletes  []string
	// failStatus makes that many status writes fail with 503 first.
	failStatus int
	// failNamespaces makes that many namespace reads fail with 500 first.
	failNamespaces int
}

type sentStatus struct {
	at time.Time
	api.InstanceStatus
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/status"):
		b, _ := io.ReadAll(r.Body)
		var in api.Instance
		if err := json.Unmarshal(b, &in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if f.failStatus > 0 {
			f.failStatus--
			http.Error(w, `{"message":"etcd is away"}`, http.StatusServiceUnavailable)
			return
		}
		f.statuses = append(f.statuses, sentStatus{time.Now(), in.Status})
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	case r.Method == http.MethodDelete:
		f.deletes = append(f.deletes, r.URL.Path)
		w.Write([]byte("{}"))
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/namespaces/"):
		if f.failNamespaces > 0 {
			f.failNamespaces--
			http.Error(w, `{"code":500,"message":"etcd is away"}`, http.StatusInternalServerError)
			return
		}
		// Admission asks for the namespace's policy: there is none.
		http.Error(w, `{"code":404,"message":"namespace not found"}`, http.StatusNotFound)
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotImplemented)
	}
}

// last is the last status written.
func (f *fakeAPI) last() api.InstanceStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.statuses) == 0 {
		return api.InstanceStatus{}
	}
	return f.statuses[len(f.statuses)-1].InstanceStatus
}

func (f *fakeAPI) sent() []sentStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentStatus(nil), f.statuses...)
}

// workerHarness is one worker with a fake driver and API; the test calls
// step itself.
type workerHarness struct {
	t   *testing.T
	ctx context.Context
	drv *fake.Driver
	api *fakeAPI
	a   *Agent
	w   *worker
	in  *api.Instance
}

func newWorkerHarness(t *testing.T, in *api.Instance, drainDelay time.Duration) *workerHarness {
	t.Helper()
	fa := &fakeAPI{}
	srv := httptest.NewServer(fa)
	t.Cleanup(srv.Close)
	drv := fake.New()
	a := New(Config{
		NodeName:   "n1",
		Client:     client.New(srv.URL),
		Driver:     drv,
		DataDir:    t.TempDir(),
		Log:        slog.New(slog.DiscardHandler),
		DrainDelay: drainDelay,
	})
	api.SetDefaults(in)
	key := keyOf(in)
	a.desired[key] = in
	a.synced = true
	w := newWorker(a, key)
	t.Cleanup(w.stopProbes)
	return &workerHarness{t: t, ctx: t.Context(), drv: drv, api: fa, a: a, w: w, in: in}
}

// stepUntil steps the worker, as its wake-ups would, until cond holds.
func (h *workerHarness) stepUntil(what string, cond func(api.InstanceStatus) bool) api.InstanceStatus {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.w.step(h.ctx)
		st := h.api.last()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("waited 5s for %s; last status %+v; driver calls %v", what, st, h.drv.Calls())
		}
		select {
		case <-h.w.wake:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func testInstance(h api.Health, ports ...api.Port) *api.Instance {
	return &api.Instance{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance},
		Metadata: api.ObjectMeta{Name: "web-abc-0", Namespace: "default", UID: "0123456789abcdef"},
		Spec: api.InstanceSpec{App: "web", Node: "n1", Template: api.Template{
			Image: "shoal.local/web:v1", Ports: ports, Health: h,
		}},
	}
}

// TestWorkerRefusesWhileTheNamespaceIsUnknown: an instance whose
// namespace's policy cannot be read is not started but Failed with the
// reason, and started once a server answers.
func TestWorkerRefusesWhileTheNamespaceIsUnknown(t *testing.T) {
	h := newWorkerHarness(t, testInstance(api.Health{}), -1)
	h.api.failNamespaces = 1
	st := h.stepUntil("refused", func(s api.InstanceStatus) bool { return s.Phase != "" })
	if st.Phase != api.PhaseFailed || !strings.Contains(st.Message, `cannot read the policy of namespace "default" from the servers`) {
		t.Fatalf("with the namespace unreadable: %+v, want Failed with the reason", st)
	}
	if calls := h.drv.Calls(); len(calls) > 0 {
		t.Fatalf("with the namespace unreadable the driver was called: %v", calls)
	}
	h.stepUntil("running after the retry", func(s api.InstanceStatus) bool { return s.Phase == api.PhaseRunning })
}

func TestWorkerReadyWithoutReadinessProbe(t *testing.T) {
	h := newWorkerHarness(t, testInstance(api.Health{}), -1)
	st := h.stepUntil("running", func(s api.InstanceStatus) bool { return s.Phase == api.PhaseRunning })
	if !st.Ready {
		t.Errorf("running without a readiness probe: %+v, want ready", st)
	}
}

func TestWorkerReadiness(t *testing.T) {
	var mu sync.Mutex
	code := http.StatusServiceUnavailable
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(code)
	}))
	defer srv.Close()
	setCode := func(c int) { mu.Lock(); code = c; mu.Unlock() }
	port, _ := strconv.Atoi(srv.URL[strings.LastIndexByte(srv.URL, ':')+1:])
	in := testInstance(api.Health{Readiness: &api.Probe{
		HTTP:          &api.HTTPProbe{Port: "http", Path: "/ready"},
		PeriodSeconds: 1, FailureThreshold: 1,
	}}, api.Port{Name: "http", ContainerPort: int32(port)})
	h := newWorkerHarness(t, in, -1)

	st := h.stepUntil("running", func(s api.InstanceStatus) bool { return s.Phase == api.PhaseRunning })
	if st.Ready {
		t.Fatalf("ready before the readiness probe passed: %+v", st)
	}
	want := fmt.Sprintf("readiness probe failed: GET http://127.0.0.1:%d/ready: status 503, want 200-399", port)
	st = h.stepUntil("the failure in the message", func(s api.InstanceStatus) bool { return s.Message != "" })
	if st.Ready || st.Message != want {
		t.Errorf("status %+v, want not ready with message %q", st, want)
	}
	setCode(http.StatusOK)
	st = h.stepUntil("ready", func(s api.InstanceStatus) bool { return s.Ready })
	if st.Message != "" || st.Phase != api.PhaseRunning {
		t.Errorf("ready status %+v, want running without a message", st)
	}
	setCode(http.StatusInternalServerError)
	h.stepUntil("not ready again", func(s api.InstanceStatus) bool { return !s.Ready })
	if calls := h.drv.Calls(); strings.Contains(fmt.Sprint(calls), "stop") {
		t.Errorf("a failing readiness probe stopped the container: %v", calls)
	}
}

func TestWorkerLivenessRestarts(t *testing.T) {
	in := testInstance(api.Health{Liveness: &api.Probe{
		Exec: &api.ExecProbe{Command: []string{"check"}}, PeriodSeconds: 1, FailureThreshold: 1,
	}})
	grace := int64(7)
	in.Spec.Template.TerminationGracePeriodSeconds = &grace
	h := newWorkerHarness(t, in, time.Hour) // a liveness restart does not drain
	var mu sync.Mutex
	healthy := false
	h.drv.ExecFunc = func(context.Context, string, []string, time.Duration) (int, string, error) {
		mu.Lock()
		defer mu.Unlock()
		if healthy {
			return 0, "", nil
		}
		return 2, "database gone\n", nil
	}

	first := h.stepUntil("running", func(s api.InstanceStatus) bool { return s.Phase == api.PhaseRunning })
	st := h.stepUntil("a restart", func(s api.InstanceStatus) bool { return s.Restarts == 1 })
	mu.Lock()
	healthy = true
	mu.Unlock()
	want := `liveness probe failed: command "check" exited with code 2: database gone`
	if st.Phase != api.PhaseRunning || st.Message != want || !st.StartedAt.After(first.StartedAt) || st.IP != first.IP || st.ContainerID != first.ContainerID {
		t.Errorf("after the restart: %+v\nwant running since after %v, same container and IP, message %q", st, first.StartedAt, want)
	}
	var lifecycle []string
	for _, c := range h.drv.Calls() {
		if !strings.HasPrefix(c.What, "exec") {
			lifecycle = append(lifecycle, c.What)
		}
	}
	id := containerID(in)
	if got, want := strings.Join(lifecycle, ", "), fmt.Sprintf("image shoal.local/web:v1, create %s, start %s, stop %s 7s, start %s", id, id, id, id); got != want {
		t.Errorf("driver calls:\n  %s\nwant\n  %s", got, want)
	}
	// The message stays for the run; the new run is probed afresh and,
	// passing, is not restarted again.
	for range 3 {
		h.w.step(h.ctx)
		time.Sleep(50 * time.Millisecond)
	}
	if st := h.api.last(); st.Restarts != 1 || st.Message != want {
		t.Errorf("later: restarts %d, message %q; want 1 and the liveness message", st.Restarts, st.Message)
	}
}

func TestWorkerLivenessFailureWithRestartNever(t *testing.T) {
	port := closedPort(t)
	in := testInstance(api.Health{Liveness: &api.Probe{TCP: &api.TCPProbe{Port: "app"}, PeriodSeconds: 1, FailureThreshold: 1}},
		api.Port{Name: "app", ContainerPort: int32(port)})
	in.Spec.Template.RestartPolicy = api.RestartNever
	h := newWorkerHarness(t, in, -1)
	st := h.stepUntil("failed", func(s api.InstanceStatus) bool { return s.Phase == api.PhaseFailed })
	want := fmt.Sprintf("liveness probe failed: connect to 127.0.0.1:%d: connection refused", port)
	if st.Message != want || st.Restarts != 0 || st.Ready {
		t.Errorf("status %+v, want failed, not restarted, with message %q", st, want)
	}
}

// TestWorkerDrainsBeforeStop: a deleted instance is reported not ready
// (the write retried until the server takes it), then the container runs
// on for the drain delay, then stops.
func TestWorkerDrainsBeforeStop(t *testing.T) {
	in := testInstance(api.Health{})
	const drain = 300 * time.Millisecond
	h := newWorkerHarness(t, in, drain)
	h.stepUntil("ready", func(s api.InstanceStatus) bool { return s.Ready })

	deleted := *in
	deleted.Metadata.DeletedAt = time.Now().UTC()
	deleted.Status = h.api.last()
	h.a.mu.Lock()
	h.a.desired[keyOf(in)] = &deleted
	h.a.mu.Unlock()
	h.api.mu.Lock()
	h.api.failStatus = 2
	h.api.mu.Unlock()

	if done := h.w.step(h.ctx); !done {
		t.Fatalf("step did not finish the deleted instance; driver calls %v", h.drv.Calls())
	}
	sent := h.api.sent()
	last := sent[len(sent)-1]
	if last.Phase != api.PhaseTerminating || last.Ready {
		t.Fatalf("last status %+v, want Terminating and not ready", last.InstanceStatus)
	}
	var stop fake.Call
	for _, c := range h.drv.Calls() {
		if strings.HasPrefix(c.What, "stop ") {
			stop = c
		}
	}
	if stop.What != "stop "+containerID(in)+" 10s" {
		t.Fatalf("driver calls %v, want a stop with the default grace 10s", h.drv.Calls())
	}
	if gap := stop.At.Sub(last.at); gap < drain {
		t.Errorf("stopped %v after reporting not ready, want at least the drain delay %v", gap, drain)
	}
	h.api.mu.Lock()
	defer h.api.mu.Unlock()
	if h.api.failStatus != 0 {
		t.Errorf("%d failed status writes left: the worker did not retry", h.api.failStatus)
	}
	if len(h.api.deletes) != 1 {
		t.Errorf("deletes %v, want the instance deleted once", h.api.deletes)
	}
}

// TestWorkerSeesExitFromEvents: a crash is handled as soon as the runtime
// reports the exit, not at the next resync (here an hour away).
func TestWorkerSeesExitFromEvents(t *testing.T) {
	fa := &fakeAPI{}
	srv := httptest.NewServer(fa)
	t.Cleanup(srv.Close)
	drv := fake.New()
	a := New(Config{
		NodeName: "n1", Client: client.New(srv.URL), Driver: drv, DataDir: t.TempDir(),
		Log: slog.New(slog.DiscardHandler), DrainDelay: -1, Resync: time.Hour,
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer func() { cancel(); a.wg.Wait() }()
	go a.exitLoop(ctx)
	in := testInstance(api.Health{})
	in.Spec.Template.RestartPolicy = api.RestartNever
	api.SetDefaults(in)
	a.setDesired(ctx, map[string]*api.Instance{keyOf(in): in}, true)

	waitFor := func(what string, cond func(api.InstanceStatus) bool) api.InstanceStatus {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond(fa.last()) {
			if time.Now().After(deadline) {
				t.Fatalf("waited 5s for %s; last status %+v; driver calls %v", what, fa.last(), drv.Calls())
			}
			time.Sleep(5 * time.Millisecond)
		}
		return fa.last()
	}
	waitFor("running", func(s api.InstanceStatus) bool { return s.Phase == api.PhaseRunning })
	drv.Exit(containerID(in), 3)
	st := waitFor("the exit reported", func(s api.InstanceStatus) bool { return s.Phase == api.PhaseFailed })
	if st.ExitCode == nil || *st.ExitCode != 3 {
		t.Errorf("status %+v, want exit code 3", st)
	}
}

// TestWorkerEphemeralStorageLimit: a container whose writable layer grows
// past its ephemeralStorage limit is stopped, with the reason; with
// restartPolicy Never the instance fails.
func TestWorkerEphemeralStorageLimit(t *testing.T) {
	in := testInstance(api.Health{})
	in.Spec.Template.RestartPolicy = api.RestartNever
	in.Spec.Template.Resources.Limits = &api.ResourceList{EphemeralStorage: "1Mi"}
	h := newWorkerHarness(t, in, -1)
	h.stepUntil("running", func(s api.InstanceStatus) bool { return s.Phase == api.PhaseRunning })
	h.drv.SetWritable(containerID(h.in), 2<<20)
	h.w.storageAt = time.Time{} // measure now
	st := h.stepUntil("failed", func(s api.InstanceStatus) bool { return s.Phase == api.PhaseFailed })
	if want := "ephemeral storage limit exceeded: 2Mi written outside mounts, limit 1Mi"; st.Message != want {
		t.Errorf("message %q, want %q", st.Message, want)
	}
}
