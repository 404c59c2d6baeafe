package api

// Defaults for fields a manifest may leave out.
const (
	DefaultReplicas                      int32 = 1
	DefaultRestartPolicy                       = RestartAlways
	DefaultProtocol                            = ProtocolTCP
	DefaultTerminationGracePeriodSeconds int64 = 10
)

// SetDefaults fills the fields a manifest may leave out. It never changes a
// field that is set, so it is safe to apply more than once. apiVersion and
// kind are left as they are: guessing them would hide mistakes.
func SetDefaults(obj Object) {
	if obj == nil {
		return
	}
	meta := obj.GetMeta()
	if info, ok := LookupKind(string(obj.GetTypeMeta().Kind)); ok && info.Namespaced && meta.Namespace == "" {
		meta.Namespace = DefaultNamespace
	}
	switch o := obj.(type) {
	case *App:
		if o.Spec.Replicas == nil {
			r := DefaultReplicas
			o.Spec.Replicas = &r
		}
		defaultTemplate(&o.Spec.Template)
		u := &o.Spec.Update
		if u.MaxSurge == nil && u.MaxUnavailable == nil && usesHostPort(&o.Spec.Template) {
			// A surge instance would need the same host port on the same
			// node as the one it replaces: replace in place instead.
			zero, one := int32(0), int32(1)
			u.MaxSurge, u.MaxUnavailable = &zero, &one
		}
		if u.MaxSurge == nil {
			n := DefaultMaxSurge
			if u.MaxUnavailable != nil && *u.MaxUnavailable > 0 {
				n = 0 // an explicit maxUnavailable alone means replace in place
			}
			u.MaxSurge = &n
		}
		if u.MaxUnavailable == nil {
			n := DefaultMaxUnavailable
			u.MaxUnavailable = &n
		}
		if u.ProgressDeadlineSeconds == 0 {
			u.ProgressDeadlineSeconds = DefaultProgressDeadlineSeconds
		}
		if u.AutoRollback == nil {
			t := true
			u.AutoRollback = &t
		}
	case *Instance:
		defaultTemplate(&o.Spec.Template)
	case *Job:
		defaultJob(o)
	}
}

func defaultTemplate(t *Template) {
	if t.RestartPolicy == "" {
		t.RestartPolicy = DefaultRestartPolicy
	}
	for i := range t.Ports {
		if t.Ports[i].Protocol == "" {
			t.Ports[i].Protocol = DefaultProtocol
		}
	}
	if t.TerminationGracePeriodSeconds == nil {
		g := DefaultTerminationGracePeriodSeconds
		t.TerminationGracePeriodSeconds = &g
	}
	for _, p := range []*Probe{t.Health.Readiness, t.Health.Liveness} {
		if p == nil {
			continue
		}
		if p.PeriodSeconds == 0 {
			p.PeriodSeconds = DefaultProbePeriodSeconds
		}
		if p.TimeoutSeconds == 0 {
			p.TimeoutSeconds = DefaultProbeTimeoutSeconds
		}
		if p.FailureThreshold == 0 {
			p.FailureThreshold = DefaultProbeFailureThreshold
		}
		if p.HTTP != nil {
			if p.HTTP.Path == "" {
				p.HTTP.Path = "/"
			}
			if p.HTTP.MinStatus == 0 {
				p.HTTP.MinStatus = 200
			}
			if p.HTTP.MaxStatus == 0 {
				p.HTTP.MaxStatus = 399
			}
		}
	}
}

func usesHostPort(t *Template) bool {
	for _, p := range t.Ports {
		if p.HostPort != 0 {
			return true
		}
	}
	return false
}
