package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrInvalid matches every error that says an object or manifest is not
// acceptable, whatever its detail: errors.Is(err, api.ErrInvalid).
var ErrInvalid = errors.New("invalid")

// FieldError is one problem with one field. Path uses the JSON field names
// with list indices: "spec.ports[1].containerPort".
type FieldError struct {
	Path    string
	Message string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// InvalidError is every problem found in one object or manifest document.
type InvalidError struct {
	// Document is the 1-based position of the document in its file, counting
	// only non-empty documents; 0 if the object did not come from a file.
	Document int
	// Kind and Name identify the object when known; either may be empty.
	Kind   Kind
	Name   string
	Errors []FieldError
}

// Error reads like
// `document 2 (App "web"): spec.replicas: must not be negative; spec.image: required`.
func (e *InvalidError) Error() string {
	var b strings.Builder
	if e.Document > 0 {
		fmt.Fprintf(&b, "document %d", e.Document)
	}
	var subject string
	switch {
	case e.Kind != "" && e.Name != "":
		subject = string(e.Kind) + " " + quote(e.Name)
	case e.Kind != "":
		subject = string(e.Kind)
	case e.Name != "":
		subject = quote(e.Name)
	}
	if subject != "" {
		if b.Len() > 0 {
			b.WriteString(" (" + subject + ")")
		} else {
			b.WriteString(subject)
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if len(e.Errors) == 0 {
		b.WriteString("invalid")
	}
	for i, fe := range e.Errors {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// maxReportedErrors keeps a hopeless document from producing a huge message.
const maxReportedErrors = 20

func newInvalid(doc int, kind Kind, name string, errs []FieldError) *InvalidError {
	if len(errs) > maxReportedErrors {
		more := len(errs) - maxReportedErrors
		errs = append(errs[:maxReportedErrors:maxReportedErrors], FieldError{Message: fmt.Sprintf("and %d more errors", more)})
	}
	return &InvalidError{Document: doc, Kind: kind, Name: name, Errors: errs}
}

// Validate checks an object as it would be stored, returning an
// *InvalidError listing every problem, or nil. Optional fields that are unset
// are fine (SetDefaults fills them); wrong values are not.
func Validate(obj Object) error {
	if obj == nil {
		return newInvalid(0, "", "", []FieldError{{Message: "no object"}})
	}
	tm, meta := obj.GetTypeMeta(), obj.GetMeta()
	kind := kindOf(obj)
	v := &validator{}
	v.typeMeta(tm, kind)
	switch o := obj.(type) {
	case *App:
		v.meta(meta, true, false)
		v.template("spec", &o.Spec.Template)
		if r := o.Spec.Replicas; r != nil && *r < 0 {
			v.add("spec.replicas", "must not be negative")
		} else if r != nil && *r > maxReplicas {
			v.add("spec.replicas", "must be at most %d", maxReplicas)
		}
		v.placement(o.Spec.Placement)
		v.update("spec.update", &o.Spec.Update)
		v.schedule(o.Spec.Schedule)
		v.autoscale(o.Spec.Autoscale, o.Spec.Resources)
	case *Job:
		v.meta(meta, true, false)
		v.job(o)
	case *Instance:
		v.meta(meta, true, false)
		v.instanceSpec(&o.Spec)
	case *Node:
		v.meta(meta, false, false)
		if sn := o.Spec.Subnet; sn != "" {
			if p, err := netip.ParsePrefix(sn); err != nil || !p.Addr().Is4() || p.Bits() > 30 || p.Masked() != p {
				v.add("spec.subnet", "%s is not an IPv4 network such as 10.244.3.0/24", quote(sn))
			}
		}
		if pr := o.Status.Accepts.PortRange; pr != "" {
			if _, err := ParsePortRange(pr); err != nil {
				v.add("status.accepts.portRange", "%v", err)
			}
		}
		if ov := o.Status.Overlay; ov != nil {
			if b, err := base64.StdEncoding.DecodeString(ov.PublicKey); err != nil || len(b) != 32 {
				v.add("status.overlay.publicKey", "%s is not a WireGuard key (32 bytes in base64)", quote(clipped(ov.PublicKey)))
			}
			if ep := ov.Endpoint; ep != "" {
				if _, err := netip.ParseAddrPort(ep); err != nil {
					v.add("status.overlay.endpoint", "%s is not IP:PORT", quote(clipped(ep)))
				}
			}
		}
	case *Namespace:
		v.meta(meta, false, false)
		for i, k := range o.Spec.Policy.RequireSignedBy {
			if !validVerifyKey(k) {
				v.add(indexPath("spec.policy.requireSignedBy", i), "%s is not a public key: want ed25519:BASE64 (as `shoal key create` prints)", quote(clipped(k)))
			}
		}
		for i, hp := range o.Spec.Policy.AllowHostPaths {
			if !isCleanAbsPath(hp) {
				v.add(indexPath("spec.policy.allowHostPaths", i), "%s is not a clean absolute path", quote(clipped(hp)))
			}
		}
		if iso := o.Spec.Policy.Isolation; iso != "" && iso != IsolationNamespace {
			v.add("spec.policy.isolation", "%s is not an isolation: want %q (cut off from other namespaces) or none", quote(clipped(iso)), IsolationNamespace)
		}
		v.quota(o.Spec.Quota)
	case *Secret:
		v.meta(meta, true, false)
		size := 0
		for _, k := range slices.Sorted(maps.Keys(o.Spec.Data)) {
			if !isSecretKey(k) {
				v.add("spec.data", "key %s: use letters, digits, '.', '_' and '-' (it becomes a file name)", quote(clipped(k)))
			}
			size += len(k) + len(o.Spec.Data[k])
		}
		if size > MaxSecretBytes {
			v.add("spec.data", "%d bytes in all; a Secret holds at most %d (64 KiB)", size, MaxSecretBytes)
		}
		if o.Spec.Sealed == nil && len(o.Spec.Data) == 0 {
			v.add("spec.data", "required: at least one key")
		}
	case *User:
		v.meta(meta, false, false)
		for i, b := range o.Spec.Roles {
			p := indexPath("spec.roles", i)
			switch {
			case b.Role == RoleClusterAdmin && b.Namespace != "":
				v.add(p+".namespace", "cluster-admin is for the whole cluster: leave namespace out")
			case b.Role == RoleViewer || b.Role == RoleDeployer || b.Role == RoleAdmin:
				if !isDNSLabel(b.Namespace) {
					v.add(p+".namespace", "required: the namespace the role is for")
				}
			case b.Role != RoleClusterAdmin:
				v.add(p+".role", "%s is not a role: use viewer, deployer, admin or cluster-admin", quote(string(b.Role)))
			}
		}
	case *Token:
		v.meta(meta, false, false)
		if !isLowerHex(meta.Name, 16) {
			v.add("metadata.name", "a token's name is its id: 16 hex digits")
		}
		switch o.Spec.Role {
		case TokenRoleAgent, TokenRoleServer:
			if o.Spec.User != "" {
				v.add("spec.user", "only a token of role user acts as a user")
			}
			if n := o.Spec.UsesLeft; n != nil && (*n < 0 || *n > MaxTokenUses) {
				v.add("spec.usesLeft", "%d: want 0 to %d joins", *n, MaxTokenUses)
			}
		case TokenRoleUser:
			if o.Spec.UsesLeft != nil {
				v.add("spec.usesLeft", "only join tokens (agent, server) count uses")
			}
			if o.Spec.User == "" {
				v.add("spec.user", "required: the user the token acts as")
			} else if !isDNSLabel(o.Spec.User) {
				v.add("spec.user", "%s is not a user name", quote(o.Spec.User))
			}
		default:
			v.add("spec.role", "%s is not a role: use agent, server or user", quote(string(o.Spec.Role)))
		}
		if !isLowerHex(o.Spec.SecretHash, 64) {
			v.add("spec.secretHash", "must be the SHA-256 of the secret, 64 hex digits")
		}
		if o.Spec.ExpiresAt.IsZero() {
			v.add("spec.expiresAt", "required: a token must expire")
		}
	case *Event:
		// Event names are generated ("web.17c3a..."), so they may be longer
		// and dotted.
		v.meta(meta, true, true)
		if o.Type != "" && o.Type != "Normal" && o.Type != "Warning" {
			v.add("type", "%s is not supported: use Normal or Warning", quote(o.Type))
		}
		if n := len(o.Message); n > MaxEventMessageBytes {
			v.add("message", "%d bytes; an event's message holds at most %d (1 KiB)", n, MaxEventMessageBytes)
		}
		if b, err := json.Marshal(o); err == nil && len(b) > MaxEventBytes {
			v.add("", "the event is %d bytes; an event holds at most %d (4 KiB) in all", len(b), MaxEventBytes)
		}
		// Terminals show events: no field may steer one (text.go); a
		// message may span lines.
		for _, f := range []struct {
			path, s string
			lines   bool
		}{{"object", o.Object, false}, {"reason", o.Reason, false}, {"source", o.Source, false}, {"message", o.Message, true}} {
			if c := terminalControlIn(f.s, f.lines); c != "" {
				v.add(f.path, "holds a character a terminal acts on (%s): escape it (api.EscapeTerminal)", c)
			}
		}
	}
	if len(v.errs) == 0 {
		return nil
	}
	if kind == "" {
		kind = tm.Kind
	}
	return newInvalid(0, kind, meta.Name, v.errs)
}

const (
	maxReplicas    = 10000
	maxGracePeriod = 3600
	maxLabelLength = 63
	nameRule       = "use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
	subdomainRule  = "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"
)

func kindOf(obj Object) Kind {
	switch obj.(type) {
	case *App:
		return KindApp
	case *Instance:
		return KindInstance
	case *Node:
		return KindNode
	case *Namespace:
		return KindNamespace
	case *Event:
		return KindEvent
	case *Token:
		return KindToken
	case *Secret:
		return KindSecret
	case *User:
		return KindUser
	case *Job:
		return KindJob
	}
	return ""
}

type validator struct {
	errs []FieldError
}

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) typeMeta(tm *TypeMeta, want Kind) {
	switch tm.APIVersion {
	case Version:
	case "":
		v.add("apiVersion", "required")
	default:
		v.add("apiVersion", "%s is not supported: use %s", quote(tm.APIVersion), Version)
	}
	switch {
	case tm.Kind == "":
		v.add("kind", "required")
	case want == "":
		v.add("kind", "%s is not a known kind", quote(string(tm.Kind)))
	case tm.Kind != want:
		v.add("kind", "%s does not match the object's type, %s", quote(string(tm.Kind)), want)
	}
}

func (v *validator) meta(m *ObjectMeta, namespaced, subdomainName bool) {
	switch {
	case m.Name == "":
		v.add("metadata.name", "required")
	case subdomainName && !isDNSSubdomain(m.Name):
		v.add("metadata.name", "%s is not a valid name: %s", quote(m.Name), subdomainRule)
	case !subdomainName && !isDNSLabel(m.Name):
		v.add("metadata.name", "%s is not a valid name: %s", quote(m.Name), nameRule)
	}
	switch {
	case !namespaced && m.Namespace != "":
		v.add("metadata.namespace", "must be empty: this kind is not namespaced")
	case namespaced && m.Namespace == "":
		v.add("metadata.namespace", "required")
	case namespaced && !isDNSLabel(m.Namespace):
		v.add("metadata.namespace", "%s is not a valid namespace: %s", quote(m.Namespace), nameRule)
	}
	v.labels("metadata.labels", m.Labels)
	if m.Revision < 0 {
		v.add("metadata.revision", "must not be negative")
	}
}

func (v *validator) labels(path string, labels map[string]string) {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := fieldPath(path, k)
		if !isLabelKey(k) {
			v.add(p, "invalid label key: use at most 63 letters, digits, '.', '_', '-' or '/'")
			continue
		}
		if val := labels[k]; len(val) > maxLabelLength || hasSpaceOrControl(val) {
			v.add(p, "invalid label value %s: use at most 63 characters, with no whitespace or control characters", quote(val))
		}
	}
}

func (v *validator) instanceSpec(s *InstanceSpec) {
	switch {
	case s.App == "" && s.Job == "":
		v.add("spec.app", "required (or spec.job)")
	case s.App != "" && s.Job != "":
		v.add("spec.job", "an instance belongs to an App or a Job, not both")
	case s.App != "" && !isDNSLabel(s.App):
		v.add("spec.app", "%s is not a valid name: %s", quote(s.App), nameRule)
	case s.Job != "" && !isDNSLabel(s.Job):
		v.add("spec.job", "%s is not a valid name: %s", quote(s.Job), nameRule)
	}
	if s.Revision < 0 {
		v.add("spec.revision", "must not be negative")
	}
	if s.Node != "" && !isDNSLabel(s.Node) {
		v.add("spec.node", "%s is not a valid name: %s", quote(s.Node), nameRule)
	}
	v.placement(s.Placement)
	v.template("spec.template", &s.Template)
}

func (v *validator) autoscale(as *Autoscale, res Resources) {
	if as == nil {
		return
	}
	const p = "spec.autoscale"
	switch {
	case as.Min < 0 || as.Min > maxReplicas:
		v.add(p+".min", "%d: want 0 to %d", as.Min, maxReplicas)
	case as.Max < 1 || as.Max > maxReplicas:
		v.add(p+".max", "%d: want 1 to %d", as.Max, maxReplicas)
	case as.Min > as.Max:
		v.add(p+".min", "%d is above max %d", as.Min, as.Max)
	}
	if as.TargetCPUPercent == 0 && as.TargetRequestsPerSecond == 0 {
		v.add(p, "give targetCPUPercent or targetRequestsPerSecond (or both)")
	}
	if as.TargetCPUPercent < 0 || as.TargetCPUPercent > 100 {
		v.add(p+".targetCPUPercent", "%d: want 1 to 100 (percent of the CPU request)", as.TargetCPUPercent)
	} else if as.TargetCPUPercent > 0 && res.Request().MilliCPU == 0 {
		v.add(p+".targetCPUPercent", "needs a CPU request (spec.resources.cpu or requests.cpu) to be a percent of")
	}
	if as.TargetRequestsPerSecond < 0 {
		v.add(p+".targetRequestsPerSecond", "%d: must be positive", as.TargetRequestsPerSecond)
	}
	for _, w := range []struct {
		path string
		s    *int32
	}{{p + ".scaleUpStabilizationSeconds", as.ScaleUpStabilizationSeconds}, {p + ".scaleDownStabilizationSeconds", as.ScaleDownStabilizationSeconds}} {
		if w.s != nil && (*w.s < 0 || *w.s > 3600) {
			v.add(w.path, "%d: want 0 to 3600", *w.s)
		}
	}
}

// maxWindow is the longest maintenance window.
const maxWindow = 7 * 24 * time.Hour

func (v *validator) schedule(chs []ScheduledChange) {
	for i, ch := range chs {
		p := indexPath("spec.schedule", i)
		switch {
		case (ch.At == "") == (ch.Cron == ""):
			v.add(p, "give at (a time) or cron (a schedule), one of them")
		case ch.At != "":
			if _, err := time.Parse(time.RFC3339, ch.At); err != nil {
				v.add(p+".at", "%s is not a time such as 2026-12-24T18:00:00+01:00 (RFC 3339)", quote(clipped(ch.At)))
			}
			if ch.TimeZone != "" {
				v.add(p+".timeZone", "only for cron: at carries its own offset")
			}
		default:
			if _, err := ParseSchedule(ch.Cron, ""); err != nil {
				v.add(p+".cron", "%s", err)
			}
			if _, err := LoadTimeZone(ch.TimeZone); err != nil {
				v.add(p+".timeZone", "%s", err)
			}
		}
		set := ch.Set
		switch {
		case set.Replicas == nil && set.Image == "" && set.Paused == nil:
			v.add(p+".set", "required: replicas, image or paused")
		case set.Replicas != nil && (*set.Replicas < 0 || *set.Replicas > maxReplicas):
			v.add(p+".set.replicas", "%d: want 0 to %d", *set.Replicas, maxReplicas)
		case hasSpaceOrControl(set.Image):
			v.add(p+".set.image", "%s must not contain whitespace", quote(set.Image))
		}
	}
}

// maxJobName leaves room in a Job's name for a run's tick (-NNNNNNNN)
// and an instance's number (-NNN).
const maxJobName = 50

func (v *validator) job(o *Job) {
	sp := &o.Spec
	if len(o.Metadata.Name) > maxJobName {
		v.add("metadata.name", "a Job's name is at most %d characters (its runs and instances add to it)", maxJobName)
	}
	v.template("spec", &sp.Template)
	v.placement(sp.Placement)
	if sp.RestartPolicy == RestartAlways {
		v.add("spec.restartPolicy", "a Job's instances run to completion: use Never or OnFailure (an App runs Always)")
	}
	positive := func(path string, p *int32, max int32) {
		if p != nil && (*p < 1 || *p > max) {
			v.add(path, "%d: want 1 to %d", *p, max)
		}
	}
	positive("spec.completions", sp.Completions, maxReplicas)
	positive("spec.parallelism", sp.Parallelism, maxReplicas)
	if c, p := sp.Completions, sp.Parallelism; c != nil && p != nil && *c >= 1 && *p > *c {
		v.add("spec.parallelism", "%d is more than completions (%d): at most %d can run", *p, *c, *c)
	}
	nonNegative := func(path string, p *int32) {
		if p != nil && *p < 0 {
			v.add(path, "%d: must not be negative", *p)
		}
	}
	nonNegative("spec.backoffLimit", sp.BackoffLimit)
	nonNegative("spec.successfulJobsHistoryLimit", sp.SuccessfulJobsHistoryLimit)
	nonNegative("spec.failedJobsHistoryLimit", sp.FailedJobsHistoryLimit)
	seconds := func(path string, p *int64, min int64) {
		if p != nil && *p < min {
			v.add(path, "%d: want %d or more", *p, min)
		}
	}
	seconds("spec.activeDeadlineSeconds", sp.ActiveDeadlineSeconds, 1)
	seconds("spec.ttlSecondsAfterFinished", sp.TTLSecondsAfterFinished, 0)
	seconds("spec.startingDeadlineSeconds", sp.StartingDeadlineSeconds, 1)
	if _, err := LoadTimeZone(sp.TimeZone); err != nil {
		v.add("spec.timeZone", "%s", err)
	}
	if sp.Schedule == "" {
		if sp.TimeZone != "" || sp.ConcurrencyPolicy != "" || sp.StartingDeadlineSeconds != nil || sp.Suspend ||
			sp.SuccessfulJobsHistoryLimit != nil || sp.FailedJobsHistoryLimit != nil {
			v.add("spec.schedule", "required by timeZone, concurrencyPolicy, startingDeadlineSeconds, suspend and the history limits")
		}
		return
	}
	if _, err := ParseSchedule(sp.Schedule, ""); err != nil {
		v.add("spec.schedule", "%s", err)
	}
	switch sp.ConcurrencyPolicy {
	case "", ConcurrencyAllow, ConcurrencyForbid, ConcurrencyReplace:
	default:
		v.add("spec.concurrencyPolicy", "%s: use Allow, Forbid or Replace", quote(string(sp.ConcurrencyPolicy)))
	}
}

func (v *validator) placement(p Placement) {
	v.labels("spec.placement.nodeSelector", p.NodeSelector)
	if p.MaxPerNode < 0 {
		v.add("spec.placement.maxPerNode", "%d: want 1 or more (0 or absent: no limit)", p.MaxPerNode)
	}
	if k := p.SpreadBy; k != "" && !isLabelKey(k) {
		v.add("spec.placement.spreadBy", "%s is not a label key", quote(k))
	}
}

// template checks a container template; path is where it sits ("spec" for
// an App, whose template is inline, "spec.template" for an Instance).
func (v *validator) template(path string, t *Template) {
	switch {
	case t.Image == "":
		v.add(path+".image", "required")
	case hasSpaceOrControl(t.Image):
		v.add(path+".image", "%s must not contain whitespace", quote(t.Image))
	}
	v.noNUL(path+".command", t.Command)
	for i, name := range t.Secrets {
		if !isDNSLabel(name) {
			v.add(indexPath(path+".secrets", i), "%s is not a Secret name: %s", quote(name), nameRule)
		}
	}
	v.noNUL(path+".args", t.Args)
	for i, e := range t.Env {
		p := indexPath(path+".env", i)
		switch {
		case e.Name == "":
			v.add(p+".name", "required")
		case strings.ContainsRune(e.Name, '='):
			v.add(p+".name", "%s must not contain '='", quote(e.Name))
		case strings.ContainsRune(e.Name, 0):
			v.add(p+".name", "must not contain NUL characters")
		}
		if strings.ContainsRune(e.Value, 0) {
			v.add(p+".value", "must not contain NUL characters")
		}
		if r := e.SecretKeyRef; r != nil {
			switch {
			case e.Value != "":
				v.add(p, "give value or secretKeyRef, not both")
			case !isDNSLabel(r.Name):
				v.add(p+".secretKeyRef.name", "%s is not a Secret name: %s", quote(r.Name), nameRule)
			case !isSecretKey(r.Key):
				v.add(p+".secretKeyRef.key", "%s is not a key of a Secret", quote(r.Key))
			}
		}
	}
	if t.WorkingDir != "" && (!strings.HasPrefix(t.WorkingDir, "/") || strings.ContainsRune(t.WorkingDir, 0)) {
		v.add(path+".workingDir", "must be an absolute path")
	}
	v.ports(path+".ports", t.Ports)
	v.securityContext(path+".securityContext", t.SecurityContext)
	v.volumes(path+".volumes", t.Volumes)
	if sig := t.Signature; sig != nil {
		if !validVerifyKey(sig.Key) {
			v.add(path+".signature.key", "%s is not a public key: want ed25519:BASE64", quote(clipped(sig.Key)))
		}
		if b, err := base64.StdEncoding.DecodeString(sig.Value); err != nil || len(b) != 64 {
			v.add(path+".signature.value", "not an Ed25519 signature (64 bytes of base64)")
		}
		if sig.Namespace != "" && !isDNSLabel(sig.Namespace) {
			v.add(path+".signature.namespace", "%s is not a namespace name: %s", quote(clipped(sig.Namespace)), nameRule)
		}
	}
	v.probe(path+".health.readiness", t.Health.Readiness, t.Ports)
	v.probe(path+".health.liveness", t.Health.Liveness, t.Ports)
	v.resources(path+".resources", &t.Resources)
	switch t.RestartPolicy {
	case "", RestartAlways, RestartOnFailure, RestartNever:
	default:
		v.add(path+".restartPolicy", "%s is not supported: use Always, OnFailure or Never", quote(string(t.RestartPolicy)))
	}
	if g := t.TerminationGracePeriodSeconds; g != nil && (*g < 0 || *g > maxGracePeriod) {
		v.add(path+".terminationGracePeriodSeconds", "must be between 0 and %d", maxGracePeriod)
	}
}

// probe checks one health probe: exactly one kind, a port the template
// declares, a command to run, sane timings.
func (v *validator) probe(path string, pr *Probe, ports []Port) {
	if pr == nil {
		return
	}
	n := 0
	if pr.HTTP != nil {
		n++
		v.portRef(path+".http.port", pr.HTTP.Port, ports)
		if pr.HTTP.Path != "" && !strings.HasPrefix(pr.HTTP.Path, "/") {
			v.add(path+".http.path", "must start with /")
		}
		lo, hi := pr.HTTP.MinStatus, pr.HTTP.MaxStatus
		if (lo != 0 && (lo < 100 || lo > 599)) || (hi != 0 && (hi < 100 || hi > 599)) || (lo != 0 && hi != 0 && lo > hi) {
			v.add(path+".http", "minStatus and maxStatus must be HTTP statuses (100-599), min <= max")
		}
	}
	if pr.TCP != nil {
		n++
		v.portRef(path+".tcp.port", pr.TCP.Port, ports)
	}
	if pr.Exec != nil {
		n++
		if len(pr.Exec.Command) == 0 || pr.Exec.Command[0] == "" {
			v.add(path+".exec.command", "required: the command to run in the container")
		}
		v.noNUL(path+".exec.command", pr.Exec.Command)
	}
	if n != 1 {
		v.add(path, "needs exactly one of http, tcp or exec")
	}
	for _, f := range []struct {
		name string
		val  int32
		min  int32
	}{{"initialDelaySeconds", pr.InitialDelaySeconds, 0}, {"periodSeconds", pr.PeriodSeconds, 0}, {"timeoutSeconds", pr.TimeoutSeconds, 0}, {"failureThreshold", pr.FailureThreshold, 0}} {
		if f.val < f.min || f.val > 3600 {
			v.add(path+"."+f.name, "must be between %d and 3600", f.min)
		}
	}
}

// portRef checks that a reference is a port number in range or the name
// of a port the template declares.
func (v *validator) portRef(path string, ref PortRef, ports []Port) {
	if ref == "" {
		v.add(path, "required")
		return
	}
	if n, ok := ref.Number(); ok {
		if n < 1 || n > 65535 {
			v.add(path, "%s: a port number must be between 1 and 65535", ref)
		}
		return
	}
	if _, ok := ResolvePort(ref, ports); !ok {
		v.add(path, "%s is not the name of a port this app declares in ports (use a port number or one of its port names)", quote(string(ref)))
	}
}

// ResolvePort finds the container port a PortRef names: a number in range
// stands for itself (it need not be declared, as in Kubernetes), a name
// must be one of ports.
func ResolvePort(ref PortRef, ports []Port) (int32, bool) {
	if n, ok := ref.Number(); ok {
		return int32(n), n >= 1 && n <= 65535
	}
	for _, p := range ports {
		if p.Name != "" && string(ref) == p.Name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

func (v *validator) resources(path string, r *Resources) {
	before := len(v.errs)
	check := func(p, cpu, mem string) {
		if cpu != "" {
			if _, err := ParseCPU(cpu); err != nil {
				v.add(p+".cpu", "%s", err)
			}
		}
		if mem != "" {
			if _, err := ParseMemory(mem); err != nil {
				v.add(p+".memory", "%s", err)
			}
		}
	}
	check(path, r.CPU, r.Memory)
	if q := r.Requests; q != nil {
		check(path+".requests", q.CPU, q.Memory)
		if q.Pids != 0 || q.EphemeralStorage != "" {
			v.add(path+".requests", "pids and ephemeralStorage are limits only")
		}
	}
	if q := r.Limits; q != nil {
		check(path+".limits", q.CPU, q.Memory)
		if q.Pids < 0 || q.Pids > 1<<22 {
			v.add(path+".limits.pids", "%d: want 1 to %d (or none)", q.Pids, 1<<22)
		}
		if q.EphemeralStorage != "" {
			if _, err := ParseMemory(q.EphemeralStorage); err != nil {
				v.add(path+".limits.ephemeralStorage", "%s", err)
			}
		}
	}
	if len(v.errs) > before {
		return
	}
	req, lim := r.Request(), r.Limit()
	if lim.MilliCPU > 0 && lim.MilliCPU < req.MilliCPU {
		v.add(path+".limits.cpu", "%s is below the request %s: a limit must be at least the request", FormatMilliCPU(lim.MilliCPU), FormatMilliCPU(req.MilliCPU))
	}
	if lim.MemoryBytes > 0 && lim.MemoryBytes < req.MemoryBytes {
		v.add(path+".limits.memory", "%s is below the request %s: a limit must be at least the request", FormatBytes(lim.MemoryBytes), FormatBytes(req.MemoryBytes))
	}
}

func (v *validator) window(path string, w *UpdateWindow) {
	if w == nil {
		return
	}
	if _, err := ParseSchedule(w.Cron, ""); err != nil {
		v.add(path+".cron", "%s", err)
	}
	if _, err := LoadTimeZone(w.TimeZone); err != nil {
		v.add(path+".timeZone", "%s", err)
	}
	if d, err := time.ParseDuration(w.Duration); err != nil || d <= 0 || d > maxWindow {
		v.add(path+".duration", "%s: want a duration such as 2h, at most 168h", quote(clipped(w.Duration)))
	}
}

func (v *validator) update(path string, u *Update) {
	v.window(path+".window", u.Window)
	if u.MaxSurge != nil && (*u.MaxSurge < 0 || *u.MaxSurge > maxReplicas) {
		v.add(path+".maxSurge", "must be between 0 and %d", maxReplicas)
	}
	if u.MaxUnavailable != nil && (*u.MaxUnavailable < 0 || *u.MaxUnavailable > maxReplicas) {
		v.add(path+".maxUnavailable", "must be between 0 and %d", maxReplicas)
	}
	if u.MaxSurge != nil && u.MaxUnavailable != nil && *u.MaxSurge == 0 && *u.MaxUnavailable == 0 {
		v.add(path, "maxSurge and maxUnavailable cannot both be 0: the rollout could never progress")
	}
	if u.ProgressDeadlineSeconds < 0 || u.ProgressDeadlineSeconds > 86400 {
		v.add(path+".progressDeadlineSeconds", "must be between 0 and 86400")
	}
}

func (v *validator) noNUL(path string, list []string) {
	for i, s := range list {
		if strings.ContainsRune(s, 0) {
			v.add(indexPath(path, i), "must not contain NUL characters")
		}
	}
}

func (v *validator) ports(path string, ports []Port) {
	names := map[string]string{}          // port name -> path of its first use
	containerPorts := map[string]string{} // "8080/TCP" -> path
	hostPorts := map[string]string{}      // "18080/TCP" -> path
	for i, port := range ports {
		p := indexPath(path, i)
		protocol := port.Protocol
		if protocol == "" {
			protocol = ProtocolTCP
		}
		if port.Name != "" {
			if !isDNSLabel(port.Name) {
				v.add(p+".name", "%s is not a valid name: %s", quote(port.Name), nameRule)
			} else if first, dup := names[port.Name]; dup {
				v.add(p+".name", "%s is already used by %s", quote(port.Name), first)
			} else {
				names[port.Name] = p
			}
		}
		switch {
		case port.ContainerPort == 0:
			v.add(p+".containerPort", "required")
		case port.ContainerPort < 0 || port.ContainerPort > 65535:
			v.add(p+".containerPort", "must be between 1 and 65535")
		default:
			key := fmt.Sprintf("%d/%s", port.ContainerPort, protocol)
			if first, dup := containerPorts[key]; dup {
				v.add(p+".containerPort", "%s is already used by %s", key, first)
			} else {
				containerPorts[key] = p
			}
		}
		switch {
		case port.HostPort < 0 || port.HostPort > 65535:
			v.add(p+".hostPort", "must be between 0 and 65535")
		case port.HostPort > 0:
			// Per protocol: 53/TCP and 53/UDP on one node do not collide.
			key := fmt.Sprintf("%d/%s", port.HostPort, protocol)
			if first, dup := hostPorts[key]; dup {
				v.add(p+".hostPort", "%s is already used by %s", key, first)
			} else {
				hostPorts[key] = p
			}
		}
		switch {
		case port.Publish < 0 || port.Publish > 65535:
			v.add(p+".publish", "must be between 0 and 65535")
		case port.Publish > 0 && protocol != ProtocolTCP:
			v.add(p+".publish", "only TCP ports can be published")
		}
		switch {
		case port.PublishMode != "" && port.PublishMode != PublishKernel && port.PublishMode != PublishProxy:
			v.add(p+".publishMode", "%s is not a mode: use kernel or proxy", quote(string(port.PublishMode)))
		case port.PublishMode != "" && port.Publish == 0:
			v.add(p+".publishMode", "only a published port has a mode: set publish too")
		}
		if protocol != ProtocolTCP && protocol != ProtocolUDP {
			v.add(p+".protocol", "%s is not supported: use TCP or UDP", quote(string(port.Protocol)))
		}
	}
}

// maxID is the largest user or group id a container may run as (the
// kernel keeps 2^32-1 for "no id").
const maxID = 1<<32 - 2

// maxVolumes bounds a template's volumes.
const maxVolumes = 32

// reservedMounts are paths shoal mounts itself in every container.
var reservedMounts = []string{"/etc/hosts", "/etc/resolv.conf", "/run/secrets", "/proc", "/sys", "/dev"}

func (v *validator) volumes(path string, vols []Volume) {
	if len(vols) > maxVolumes {
		v.add(path, "%d volumes; at most %d", len(vols), maxVolumes)
		return
	}
	names, mounts := map[string]int{}, map[string]int{}
	for i, vol := range vols {
		p := indexPath(path, i)
		if !isDNSLabel(vol.Name) {
			v.add(p+".name", "%s is not a volume name: %s", quote(vol.Name), nameRule)
		} else if j, dup := names[vol.Name]; dup {
			v.add(p+".name", "%s is already the name of volume %d", quote(vol.Name), j)
		} else {
			names[vol.Name] = i
		}
		if !isCleanAbsPath(vol.HostPath) {
			v.add(p+".hostPath", "required: a clean absolute path on the node (%s is not)", quote(clipped(vol.HostPath)))
		}
		switch {
		case !isCleanAbsPath(vol.MountPath) || vol.MountPath == "/":
			v.add(p+".mountPath", "required: a clean absolute path in the container other than / (%s is not)", quote(clipped(vol.MountPath)))
		case HostPathAllowed(vol.MountPath, reservedMounts):
			v.add(p+".mountPath", "%s is mounted by shoal itself (%s)", quote(vol.MountPath), strings.Join(reservedMounts, ", "))
		default:
			if j, dup := mounts[vol.MountPath]; dup {
				v.add(p+".mountPath", "%s is already mounted by volume %d", quote(vol.MountPath), j)
			}
			mounts[vol.MountPath] = i
		}
	}
}

// isCleanAbsPath: absolute, no "..", "//" or trailing "/", no NUL.
func isCleanAbsPath(p string) bool {
	return strings.HasPrefix(p, "/") && filepath.Clean(p) == p && !strings.ContainsRune(p, 0) && len(p) <= 4096
}

func (v *validator) securityContext(path string, sc *SecurityContext) {
	if sc == nil {
		return
	}
	id := func(field string, id *int64) {
		if id != nil && (*id < 0 || *id > maxID) {
			v.add(path+"."+field, "%d is not a user or group id (0 to %d)", *id, int64(maxID))
		}
	}
	id("runAsUser", sc.RunAsUser)
	id("runAsGroup", sc.RunAsGroup)
	caps := func(what string, list []string) {
		for i, c := range list {
			if _, ok := CapabilityName(c); !ok {
				v.add(indexPath(path+".capabilities."+what, i), "%s is not a Linux capability (e.g. NET_ADMIN or CAP_NET_ADMIN)", quote(c))
			}
		}
	}
	caps("add", sc.Capabilities.Add)
	caps("drop", sc.Capabilities.Drop)
}

// validVerifyKey checks the form "ed25519:BASE64" of 32 bytes.
func validVerifyKey(s string) bool {
	rest, ok := strings.CutPrefix(s, "ed25519:")
	b, err := base64.StdEncoding.DecodeString(rest)
	return ok && err == nil && len(b) == 32
}

func clipped(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isDNSLabel reports whether s is an RFC 1123 label: the form of every name
// in shoal, because names end up in hostnames, paths and container names.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

func isDNSSubdomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for part := range strings.SplitSeq(s, ".") {
		if !isDNSLabel(part) {
			return false
		}
	}
	return true
}

func isLabelKey(k string) bool {
	if k == "" || len(k) > maxLabelLength {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '_' || c == '-' || c == '/'
		if !ok {
			return false
		}
	}
	return true
}

func hasSpaceOrControl(s string) bool {
	for i, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return true
		}
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return true
			}
		}
	}
	return false
}

// fieldPath appends a map key or field name to a path: "spec.image", or
// `metadata.labels["shoal.dev/role"]` when the key is not a plain word.
func fieldPath(parent, key string) string {
	plain := key != ""
	for i := 0; i < len(key) && plain; i++ {
		c := key[i]
		plain = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
	}
	switch {
	case !plain:
		return parent + "[" + quote(key) + "]"
	case parent == "":
		return key
	default:
		return parent + "." + key
	}
}

func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// quota checks a Namespace's spec.quota: counts not negative, quantities
// that parse.
func (v *validator) quota(q Quota) {
	if q.Objects < 0 {
		v.add("spec.quota.objects", "must not be negative")
	}
	if q.Instances < 0 {
		v.add("spec.quota.instances", "must not be negative")
	}
	for _, f := range []struct{ path, val string }{{"spec.quota.bytes", q.Bytes}, {"spec.quota.memory", q.Memory}} {
		if f.val == "" {
			continue
		}
		if _, err := ParseMemory(f.val); err != nil {
			v.add(f.path, "%v", err)
		}
	}
	if q.CPU != "" {
		if _, err := ParseCPU(q.CPU); err != nil {
			v.add("spec.quota.cpu", "%v", err)
		}
	}
}
