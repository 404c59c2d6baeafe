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
	case *Instance:
		defaultTemplate(&o.Spec.Template)
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
}
