package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/runtime"
)

// Container labels the agent sets, to re-adopt containers after a restart.
const (
	labelInstance = "shoal.instance" // namespace/name
	labelUID      = "shoal.uid"
	labelNode     = "shoal.node"
)

// startingAfter is how long getting an image may take before the
// instance is reported Starting.
const startingAfter = 100 * time.Millisecond

// Restart back-off: doubles from the first delay up to the cap, and starts
// over after a run that lasted stableRun.
const (
	firstBackoff = time.Second
	maxBackoff   = 30 * time.Second
	stableRun    = 60 * time.Second
)

// retryAfter is how soon a worker tries again after a step could not
// finish (a status write failed, the runtime did not answer).
const retryAfter = time.Second

// terminatingReportFor is how long a worker retries reporting an instance
// Terminating (and not ready) before it stops the container anyway.
const terminatingReportFor = 5 * time.Second

// worker owns one instance's container.
type worker struct {
	a    *Agent
	key  string
	wake chan struct{}

	// What was last reported, to write status only on change.
	reported api.InstanceStatus
	// Restart bookkeeping.
	restarts  int32
	backoff   time.Duration
	nextStart time.Time
	// id of the container this worker created or adopted.
	id string
	// lastFailure is the last start failure recorded as an event.
	lastFailure string

	// probes check the container's current run, which began at probesFor.
	probes    *prober
	probesFor time.Time
	// note is the status message of the run that began at noteFor: why
	// it was restarted.
	note    string
	noteFor time.Time
	// killed says why the agent stopped the run that began at killedFor
	// (a failed liveness probe), for the exit that follows.
	killed    string
	killedFor time.Time
	// terminating: the instance was reported Terminating and drained.
	terminating bool
	// storageAt is when the writable layer was last measured.
	storageAt time.Time
	// retry: this step left work undone; step again soon.
	retry bool
}

func newWorker(a *Agent, key string) *worker {
	return &worker{a: a, key: key, wake: make(chan struct{}, 1), restarts: -1}
}

func (w *worker) kick() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// containerID is NAMESPACE.NAME.UID8: the instance's names (which hold no
// dots) and the first 8 characters of its uid, so a new instance of the
// same name gets a new container.
func containerID(in *api.Instance) string {
	uid := in.Metadata.UID
	if len(uid) > 8 {
		uid = uid[:8]
	}
	return in.Metadata.Namespace + "." + in.Metadata.Name + "." + uid
}

// keyOfContainer returns the instance key ("namespace/name") of a
// container id made by containerID, or "" for any other id.
func keyOfContainer(id string) string {
	parts := strings.Split(id, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return ""
	}
	return parts[0] + "/" + parts[1]
}

// run steps the worker whenever something may have changed: the server's
// view of the instance (kick from the watch), the container's process
// (kick from the runtime's exit events), a probe result (kick), or a time
// it set itself (a restart back-off ending, a failed status write to
// retry). Resync is the safety net for a lost event, not the way exits
// are noticed.
func (w *worker) run(ctx context.Context) {
	timer := time.NewTimer(w.a.cfg.Resync)
	defer timer.Stop()
	defer w.stopProbes()
	for {
		w.retry = false
		done := w.step(ctx)
		if done {
			return
		}
		timer.Reset(w.nextWake())
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
	}
}

// nextWake is how long the worker may sleep unless kicked.
func (w *worker) nextWake() time.Duration {
	d := w.a.cfg.Resync
	if w.retry {
		d = retryAfter
	}
	if until := time.Until(w.nextStart); until > 0 {
		d = min(d, until)
	}
	return d
}

// step compares desired with observed once and acts; it reports true when
// the instance is gone for good and the worker can end.
func (w *worker) step(ctx context.Context) bool {
	d := w.a.cfg.Driver
	log := w.a.log.With("instance", w.key)
	in, synced := w.a.want(w.key)

	// Find our container: the desired instance's, or one adopted by label.
	if in != nil {
		if id := containerID(in); w.id != id {
			if w.id != "" {
				w.stopProbes()
				w.removeContainer(ctx, w.id, 0)
			}
			w.id = id
		}
	} else if w.id == "" {
		w.id = w.findAdopted(ctx)
	}

	if in == nil || !in.Metadata.DeletedAt.IsZero() {
		if in == nil && !synced {
			return false // the server has not told us yet: keep it running
		}
		w.stopProbes()
		w.terminate(ctx, in)
		if w.id != "" {
			if err := w.removeContainer(ctx, w.id, graceOf(in)); err != nil {
				log.Warn("remove container", "err", err)
				w.retry = true
				return false
			}
		}
		if in != nil {
			err := w.a.cfg.Client.Delete(ctx, instanceKind, in.Metadata.Namespace, in.Metadata.Name, client.DeleteOptions{Force: true})
			if err != nil && !errors.Is(err, client.ErrNotFound) {
				log.Warn("delete instance", "err", err)
				w.retry = true
				return false
			}
			_ = os.RemoveAll(w.a.logDir(in.Metadata.Namespace, in.Metadata.Name))
			log.Info("instance removed")
		}
		return true
	}
	if w.restarts < 0 {
		w.restarts = in.Status.Restarts
	}

	st, err := d.Inspect(ctx, w.id)
	if errors.Is(err, runtime.ErrNotFound) {
		w.create(ctx, in)
		return false
	}
	if err != nil {
		log.Warn("inspect container", "err", err)
		w.retry = true
		return false
	}
	if st.State != runtime.StateRunning {
		w.stopProbes()
	}
	switch st.State {
	case runtime.StateRunning:
		if time.Since(st.StartedAt) > stableRun {
			w.backoff = 0
		}
		w.watchHealth(ctx, in, st)
		if why := w.probes.livenessFailure(); why != "" {
			w.restartUnhealthy(ctx, in, st, "liveness probe failed: "+why)
			return false
		}
		if why := w.storageExceeded(ctx, in); why != "" {
			w.restartUnhealthy(ctx, in, st, why)
			return false
		}
		msg := w.runMessage(st)
		w.report(ctx, in, func(s *api.InstanceStatus) {
			s.Phase, s.IP, s.StartedAt, s.ContainerID, s.Message = api.PhaseRunning, st.IP, st.StartedAt, w.id, msg
			s.ExitCode = nil
		})
	case runtime.StateCreated:
		w.start(ctx, in, "")
	default: // exited
		w.exited(ctx, in, st)
	}
	return false
}

// graceOf is how long the instance's process has between SIGTERM and
// SIGKILL.
func graceOf(in *api.Instance) time.Duration {
	if in != nil && in.Spec.Template.TerminationGracePeriodSeconds != nil {
		return time.Duration(*in.Spec.Template.TerminationGracePeriodSeconds) * time.Second
	}
	return time.Duration(api.DefaultTerminationGracePeriodSeconds) * time.Second
}

// terminate takes the instance out of traffic before its container stops:
// it reports it Terminating and not ready (retrying for a while, as every
// node's proxy learns of it from that write), then waits DrainDelay for
// the proxies to drop it. Once per worker; later calls only report.
func (w *worker) terminate(ctx context.Context, in *api.Instance) {
	terminating := func(s *api.InstanceStatus) { s.Phase = api.PhaseTerminating }
	if w.terminating {
		if in != nil {
			_ = w.report(ctx, in, terminating)
		}
		return
	}
	w.terminating = true
	if in != nil {
		deadline := time.Now().Add(terminatingReportFor)
		for {
			err := w.report(ctx, in, terminating)
			if err == nil || errors.Is(err, client.ErrNotFound) || ctx.Err() != nil {
				break
			}
			if time.Now().After(deadline) {
				w.a.log.Warn("could not report instance terminating; stopping it anyway", "instance", w.key, "err", err)
				break
			}
			sleep(ctx, 250*time.Millisecond)
		}
	}
	if w.id == "" || w.a.cfg.DrainDelay <= 0 {
		return
	}
	if st, err := w.a.cfg.Driver.Inspect(ctx, w.id); err != nil || st.State != runtime.StateRunning {
		return // no process, no traffic to drain
	}
	w.a.log.Info("draining before stop", "instance", w.key, "delay", w.a.cfg.DrainDelay)
	sleep(ctx, w.a.cfg.DrainDelay)
}

// watchHealth makes sure the running container's current run is probed,
// if the template has probes.
func (w *worker) watchHealth(ctx context.Context, in *api.Instance, st runtime.Status) {
	h := in.Spec.Template.Health
	if h.Readiness == nil && h.Liveness == nil {
		w.stopProbes()
		return
	}
	if w.probes != nil && w.probesFor.Equal(st.StartedAt) {
		return
	}
	w.stopProbes()
	id, ip := w.id, st.IP
	target := probeTarget{
		host:  func() string { return ip },
		ports: in.Spec.Template.Ports,
		exec: func(ctx context.Context, cmd []string, timeout time.Duration) (int, string, error) {
			return w.a.cfg.Driver.Exec(ctx, id, cmd, timeout)
		},
	}
	// The run an earlier agent reported ready stays ready until its probe
	// fails: an agent restart must not take traffic away.
	s := in.Status
	wasReady := s.Ready && s.Phase == api.PhaseRunning && s.ContainerID == w.id && s.StartedAt.Equal(st.StartedAt)
	w.probes = startProber(ctx, proberConfig{
		readiness: newProbeSpec(h.Readiness, target),
		liveness:  newProbeSpec(h.Liveness, target),
		startedAt: st.StartedAt,
		ready:     wasReady,
		notify:    w.kick,
		log:       w.a.log.With("instance", w.key),
	})
	w.probesFor = st.StartedAt
}

func (w *worker) stopProbes() {
	w.probes.stop()
	w.probes = nil
}

// restartUnhealthy restarts a container whose liveness probe failed: the
// same container (and IP), a new run. With restartPolicy Never it only
// stops it.
func (w *worker) restartUnhealthy(ctx context.Context, in *api.Instance, st runtime.Status, reason string) {
	w.stopProbes()
	w.killed, w.killedFor = reason, st.StartedAt
	w.a.log.Info("restarting container", "instance", w.key, "reason", reason)
	if err := w.a.cfg.Driver.Stop(ctx, w.id, graceOf(in)); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		w.a.log.Warn("stop unhealthy container", "instance", w.key, "err", err)
		return
	}
	if in.Spec.Template.RestartPolicy == api.RestartNever {
		w.kick() // the next step reports the exit, with reason
		return
	}
	w.restarts++
	w.start(ctx, in, reason)
}

// storageCheckEvery is how often a container with an ephemeral storage
// limit has its writable layer measured (a walk of its files).
const storageCheckEvery = 10 * time.Second

// storageExceeded says why the running container must be stopped: its
// writable layer holds more than its ephemeralStorage limit. It measures
// at most every storageCheckEvery.
func (w *worker) storageExceeded(ctx context.Context, in *api.Instance) string {
	limit := in.Spec.Template.Resources.Limit().EphemeralBytes
	if limit <= 0 || time.Since(w.storageAt) < storageCheckEvery {
		return ""
	}
	w.storageAt = time.Now()
	n, err := w.a.cfg.Driver.WritableBytes(ctx, w.id)
	if err != nil {
		w.a.log.Debug("writable layer size", "instance", w.key, "err", err)
		return ""
	}
	if n <= limit {
		return ""
	}
	return fmt.Sprintf("ephemeral storage limit exceeded: %s written outside mounts, limit %s", api.FormatBytes(n), api.FormatBytes(limit))
}

// runMessage is the status message of a running container: why it is not
// ready, else why its run was started.
func (w *worker) runMessage(st runtime.Status) string {
	if why := w.probes.readinessFailure(); why != "" {
		return "readiness probe failed: " + why
	}
	if w.noteFor.Equal(st.StartedAt) {
		return w.note
	}
	return ""
}

func (w *worker) findAdopted(ctx context.Context) string {
	list, err := w.a.cfg.Driver.List(ctx)
	if err != nil {
		return ""
	}
	for _, st := range list {
		if st.Labels[labelInstance] == w.key {
			return st.ID
		}
	}
	return ""
}

func (w *worker) removeContainer(ctx context.Context, id string, grace time.Duration) error {
	d := w.a.cfg.Driver
	if err := d.Stop(ctx, id, grace); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	return d.Remove(ctx, id)
}

func (w *worker) create(ctx context.Context, in *api.Instance) {
	if time.Now().Before(w.nextStart) {
		return
	}
	if err := w.a.admit(ctx, in); err != nil {
		w.fail(ctx, in, err)
		return
	}
	d := w.a.cfg.Driver
	t := &in.Spec.Template
	t0 := time.Now()
	defer func() { w.a.log.Debug("create took", "instance", w.key, "total", time.Since(t0)) }()
	// Starting is reported only when getting the image takes a while (a
	// pull): a status write per instance is work that competes with the
	// start itself when the image is already here.
	pulled := make(chan error, 1)
	go func() { pulled <- d.EnsureImage(ctx, t.Image) }()
	var err error
	select {
	case err = <-pulled:
	case <-time.After(startingAfter):
		w.report(ctx, in, func(s *api.InstanceStatus) { s.Phase = api.PhaseStarting; s.Node = w.a.cfg.NodeName })
		err = <-pulled
	}
	if err != nil {
		w.fail(ctx, in, err)
		return
	}
	spec, err := w.spec(ctx, in)
	if err != nil {
		w.fail(ctx, in, err)
		return
	}
	t1 := time.Now()
	_, err = d.Create(ctx, spec)
	w.a.log.Debug("runtime create", "instance", w.key, "image", t1.Sub(t0), "create", time.Since(t1))
	if err != nil && !errors.Is(err, runtime.ErrAlreadyExists) {
		w.fail(ctx, in, err)
		// Leave nothing half-made behind: netns, IP, port mappings.
		_ = d.Remove(ctx, spec.ID)
		return
	}
	w.start(ctx, in, "")
}

func (w *worker) spec(ctx context.Context, in *api.Instance) (runtime.Spec, error) {
	t := &in.Spec.Template
	lim := t.Resources.Limit()
	secrets, err := w.a.secrets(ctx, in)
	if err != nil {
		return runtime.Spec{}, err
	}
	mounts, err := w.a.mounts(ctx, in)
	if err != nil {
		return runtime.Spec{}, err
	}
	env := []string{"SHOAL_INSTANCE=" + in.Metadata.Name, "SHOAL_NAMESPACE=" + in.Metadata.Namespace}
	if in.Spec.Job != "" {
		env = append(env, "SHOAL_JOB="+in.Spec.Job)
	} else {
		env = append(env, "SHOAL_APP="+in.Spec.App)
	}
	for _, e := range t.Env {
		if r := e.SecretKeyRef; r != nil {
			v, ok := secrets[r.Name][r.Key]
			if !ok {
				return runtime.Spec{}, fmt.Errorf("env %s: secret %q has no key %q", e.Name, r.Name, r.Key)
			}
			env = append(env, e.Name+"="+string(v))
			continue
		}
		env = append(env, e.Name+"="+e.Value)
	}
	var ports []runtime.PortMapping
	for _, p := range t.Ports {
		if p.HostPort != 0 {
			ports = append(ports, runtime.PortMapping{ContainerPort: p.ContainerPort, HostPort: p.HostPort, Protocol: strings.ToLower(string(p.Protocol))})
		}
	}
	labels := map[string]string{
		labelInstance: w.key,
		labelUID:      in.Metadata.UID,
		labelNode:     w.a.cfg.NodeName,
		api.LabelApp:  in.Spec.App,
	}
	logDir := w.a.logDir(in.Metadata.Namespace, in.Metadata.Name)
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return runtime.Spec{}, err
	}
	return runtime.Spec{
		ID:          containerID(in),
		Labels:      labels,
		Image:       t.Image,
		Command:     t.Command,
		Args:        t.Args,
		Env:         env,
		WorkingDir:  t.WorkingDir,
		Hostname:    in.Metadata.Name,
		MilliCPU:    lim.MilliCPU,
		MemoryBytes: lim.MemoryBytes,
		PidsLimit:   lim.Pids,
		Ports:       ports,
		DNSServers:  w.a.cfg.DNSServers,
		DNSSearch:   []string{in.Metadata.Namespace + ".shoal", "shoal"},
		Security:    security(t.SecurityContext),
		HostPID:     t.HostPID,
		HostIPC:     t.HostIPC,
		Mounts:      mounts,
		Secrets:     secrets,
		LogPath:     logDir + "/current.log",
	}, nil
}

// security turns a template's securityContext into the runtime's terms.
func security(sc *api.SecurityContext) runtime.Security {
	sec := runtime.Security{Capabilities: sc.EffectiveCapabilities()}
	if sc == nil {
		return sec
	}
	id := func(p *int64) *uint32 {
		if p == nil {
			return nil
		}
		v := uint32(*p)
		return &v
	}
	sec.UID, sec.GID = id(sc.RunAsUser), id(sc.RunAsGroup)
	sec.ReadOnlyRoot = sc.ReadOnlyRootFilesystem
	sec.Privileged = sc.Privileged
	return sec
}

// event records an Event about the instance, without waiting: events
// explain, and losing one while the server is away is acceptable.
func (w *worker) event(in *api.Instance, typ, reason, msg string) {
	ev := api.NewEvent(in, typ, reason, msg, "agent/"+w.a.cfg.NodeName)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := w.a.cfg.Client.Create(ctx, ev); err != nil {
			w.a.log.Debug("record event", "instance", w.key, "reason", reason, "err", err)
		}
	}()
}

// start starts a new run of the container; note is the run's status
// message (why it was restarted).
func (w *worker) start(ctx context.Context, in *api.Instance, note string) {
	st, err := w.a.cfg.Driver.Start(ctx, w.id)
	if err != nil {
		w.fail(ctx, in, err)
		return
	}
	w.note, w.noteFor = note, st.StartedAt
	w.a.metrics.starts.Inc()
	if note != "" {
		w.a.metrics.restarts.Inc()
	}
	w.a.log.Info("container started", "instance", w.key, "ip", st.IP)
	if note == "" {
		w.event(in, "Normal", "Started", "container started on node "+w.a.cfg.NodeName+" with IP "+st.IP)
	} else {
		w.event(in, "Warning", "Restarted", note)
	}
	w.report(ctx, in, func(s *api.InstanceStatus) {
		s.Phase, s.IP, s.StartedAt, s.ContainerID, s.Message, s.ExitCode = api.PhaseRunning, st.IP, st.StartedAt, w.id, note, nil
		s.Node = w.a.cfg.NodeName
	})
}

// fail reports a failure to get the container running and schedules the
// next attempt with back-off.
func (w *worker) fail(ctx context.Context, in *api.Instance, err error) {
	msg := err.Error()
	if st, ierr := w.a.cfg.Driver.Inspect(ctx, w.id); ierr == nil && st.Reason != "" {
		msg = st.Reason
	}
	w.a.log.Warn("instance failed to start", "instance", w.key, "err", msg)
	w.a.metrics.failures.Inc()
	if msg != w.lastFailure {
		w.lastFailure = msg
		w.event(in, "Warning", "Failed", msg)
	}
	w.bumpBackoff()
	w.report(ctx, in, func(s *api.InstanceStatus) {
		s.Phase = api.PhaseFailed
		s.Message = msg
	})
}

func (w *worker) bumpBackoff() {
	if w.backoff == 0 {
		w.backoff = firstBackoff
	} else {
		w.backoff = min(w.backoff*2, maxBackoff)
	}
	w.nextStart = time.Now().Add(w.backoff)
}

// exited decides what to do with a container whose process ended.
func (w *worker) exited(ctx context.Context, in *api.Instance, st runtime.Status) {
	code := st.ExitCode
	reason := fmt.Sprintf("exited with code %d", code)
	if st.OOMKilled {
		reason = fmt.Sprintf("OOM killed (memory limit %s)", in.Spec.Template.Resources.MemoryLimit())
	}
	if st.Reason != "" {
		reason = st.Reason
	}
	failed := code != 0 || st.OOMKilled
	if w.killed != "" && w.killedFor.Equal(st.StartedAt) {
		reason, failed = w.killed, true
	}
	policy := in.Spec.Template.RestartPolicy
	restart := policy == api.RestartAlways || policy == "" || (policy == api.RestartOnFailure && failed)
	if !restart {
		phase := api.PhaseSucceeded
		if failed {
			phase = api.PhaseFailed
		}
		w.report(ctx, in, func(s *api.InstanceStatus) {
			s.Phase, s.ExitCode, s.Message = phase, &code, reason
		})
		return
	}
	if w.nextStart.IsZero() || w.reported.Phase == api.PhaseRunning {
		// First look at this exit: report it, then wait out the back-off.
		if !st.StartedAt.IsZero() && st.ExitedAt.Sub(st.StartedAt) > stableRun {
			w.backoff = 0
		}
		w.bumpBackoff()
		w.a.log.Info("container exited; restarting after back-off", "instance", w.key, "reason", reason, "backoff", w.backoff)
		w.event(in, "Warning", "Exited", reason+"; restarting in "+w.backoff.String())
		w.report(ctx, in, func(s *api.InstanceStatus) {
			s.Phase, s.ExitCode, s.Message = api.PhaseFailed, &code, reason+"; restarting in "+w.backoff.String()
		})
		return
	}
	if time.Now().Before(w.nextStart) {
		return
	}
	w.restarts++
	w.nextStart = time.Time{}
	w.start(ctx, in, "restarted after: "+reason)
}

// report writes the instance's status if it changed. A failed write is
// retried on the next step (the server may be away); the error says
// whether this one was.
func (w *worker) report(ctx context.Context, in *api.Instance, change func(*api.InstanceStatus)) error {
	next := w.reported
	if next.Phase == "" {
		next = in.Status
	}
	change(&next)
	next.Restarts = max(w.restarts, 0)
	next.Node = w.a.cfg.NodeName
	next.Ready = next.Phase == api.PhaseRunning && in.Metadata.DeletedAt.IsZero() && w.readyFor(in)
	if statusEqual(next, w.reported) && statusEqual(next, in.Status) {
		return nil
	}
	out := *in
	next.UpdatedAt = time.Now().UTC()
	out.Status = next
	if err := w.a.cfg.Client.UpdateStatus(ctx, &out); err != nil {
		if !errors.Is(err, client.ErrNotFound) {
			w.a.log.Debug("status update failed; will retry", "instance", w.key, "err", err)
		}
		w.reported = next
		w.reported.Phase = "" // force a retry
		w.retry = true
		return err
	}
	w.reported = next
	w.a.noteStatus(w.key, in, next)
	return nil
}

// readyFor says whether a running instance may take traffic: without a
// readiness probe, as soon as it runs; with one, once the probe of its
// current run passes.
func (w *worker) readyFor(in *api.Instance) bool {
	if in.Spec.Template.Health.Readiness == nil {
		return true
	}
	return w.probes.isReady()
}

func statusEqual(a, b api.InstanceStatus) bool {
	ec := func(x, y *int32) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Phase == b.Phase && a.Ready == b.Ready && a.Restarts == b.Restarts && a.Message == b.Message && a.IP == b.IP &&
		a.StartedAt.Equal(b.StartedAt) && a.ContainerID == b.ContainerID && ec(a.ExitCode, b.ExitCode) && a.Node == b.Node
}
