package api

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func validApp() *App {
	replicas, grace := int32(2), int64(10)
	return &App{
		TypeMeta: TypeMeta{APIVersion: Version, Kind: KindApp},
		Metadata: ObjectMeta{Name: "web", Namespace: "default", Labels: map[string]string{"tier": "web", "shoal.dev/role": "front"}},
		Spec: AppSpec{
			Template: Template{
				Image:      "registry.local:5000/web@sha256:abc",
				Env:        []EnvVar{{Name: "A", Value: "b=c"}},
				WorkingDir: "/srv",
				Ports: []Port{
					{Name: "dns", ContainerPort: 53, HostPort: 53, Protocol: ProtocolTCP},
					{Name: "dns-udp", ContainerPort: 53, HostPort: 53, Protocol: ProtocolUDP},
				},
				Resources:                     Resources{CPU: "1.5", Memory: "1Gi"},
				RestartPolicy:                 RestartOnFailure,
				TerminationGracePeriodSeconds: &grace,
			},
			Replicas:  &replicas,
			Placement: Placement{NodeSelector: map[string]string{"disk": "ssd"}},
		},
	}
}

func validInstance() *Instance {
	return &Instance{
		TypeMeta: TypeMeta{APIVersion: Version, Kind: KindInstance},
		Metadata: ObjectMeta{Name: "web-3-x7k2p", Namespace: "default", Labels: map[string]string{LabelApp: "web"}},
		Spec:     InstanceSpec{App: "web", Revision: 3, Node: "node-1", Template: Template{Image: "nginx"}},
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", 64)
	tests := []struct {
		name   string
		obj    func() Object
		want   string // "" for valid
		mutate func(Object)
	}{
		{name: "valid app", obj: func() Object { return validApp() }},
		{name: "valid app without defaults", obj: func() Object {
			return &App{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindApp}, Metadata: ObjectMeta{Name: "web", Namespace: "default"}, Spec: AppSpec{Template: Template{Image: "nginx"}}}
		}},
		{name: "valid instance", obj: func() Object { return validInstance() }},
		{name: "valid node", obj: func() Object {
			return &Node{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindNode}, Metadata: ObjectMeta{Name: "node-1"}}
		}},
		{name: "valid event", obj: func() Object {
			return &Event{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindEvent}, Metadata: ObjectMeta{Name: "web.17c3a0b2", Namespace: "default"}, Type: "Warning"}
		}},
		{
			name: "valid probes and update",
			obj: func() Object {
				a := validApp()
				a.Spec.Health.Readiness = &Probe{HTTP: &HTTPProbe{Path: "/healthz", Port: "dns"}}
				a.Spec.Health.Liveness = &Probe{Exec: &ExecProbe{Command: []string{"/bin/true"}}}
				one := int32(1)
				a.Spec.Update = Update{MaxSurge: &one, ProgressDeadlineSeconds: 30}
				return a
			},
		},
		{
			name: "probe on a port number the app does not declare",
			obj: func() Object {
				a := validApp()
				a.Spec.Health.Readiness = &Probe{TCP: &TCPProbe{Port: "9090"}}
				return a
			},
		},
		{
			name: "probe on a port name the app does not declare",
			obj: func() Object {
				a := validApp()
				a.Spec.Health.Readiness = &Probe{TCP: &TCPProbe{Port: "metrics"}}
				return a
			},
			want: `App "web": spec.health.readiness.tcp.port: "metrics" is not the name of a port this app declares in ports (use a port number or one of its port names)`,
		},
		{
			name: "probe port number out of range",
			obj: func() Object {
				a := validApp()
				a.Spec.Health.Readiness = &Probe{HTTP: &HTTPProbe{Port: "70000"}}
				a.Spec.Health.Liveness = &Probe{TCP: &TCPProbe{Port: "0"}}
				return a
			},
			want: `App "web": spec.health.readiness.http.port: 70000: a port number must be between 1 and 65535; spec.health.liveness.tcp.port: 0: a port number must be between 1 and 65535`,
		},
		{
			name: "exec probe with an empty command",
			obj:  func() Object { a := validApp(); a.Spec.Health.Liveness = &Probe{Exec: &ExecProbe{}}; return a },
			want: `App "web": spec.health.liveness.exec.command: required: the command to run in the container`,
		},
		{
			name: "probe with two kinds",
			obj: func() Object {
				a := validApp()
				a.Spec.Health.Readiness = &Probe{TCP: &TCPProbe{Port: "53"}, Exec: &ExecProbe{Command: []string{"x"}}}
				return a
			},
			want: `App "web": spec.health.readiness: needs exactly one of http, tcp or exec`,
		},
		{
			name: "rollout that can never progress",
			obj: func() Object {
				a := validApp()
				zero := int32(0)
				a.Spec.Update = Update{MaxSurge: &zero, MaxUnavailable: &zero}
				return a
			},
			want: `App "web": spec.update: maxSurge and maxUnavailable cannot both be 0: the rollout could never progress`,
		},
		{
			name: "publish a UDP port",
			obj:  func() Object { a := validApp(); a.Spec.Ports[1].Publish = 5353; return a },
			want: `App "web": spec.ports[1].publish: only TCP ports can be published`,
		},
		{
			name: "a negative user id",
			obj: func() Object {
				a := validApp()
				uid := int64(-1)
				a.Spec.SecurityContext = &SecurityContext{RunAsUser: &uid}
				return a
			},
			want: `App "web": spec.securityContext.runAsUser: -1 is not a user or group id (0 to 4294967294)`,
		},
		{
			name: "an unknown capability",
			obj: func() Object {
				a := validApp()
				a.Spec.SecurityContext = &SecurityContext{Capabilities: Capabilities{Add: []string{"NET_ADMIN"}, Drop: []string{"CAP_FLY"}}}
				return a
			},
			want: `App "web": spec.securityContext.capabilities.drop[0]: "CAP_FLY" is not a Linux capability (e.g. NET_ADMIN or CAP_NET_ADMIN)`,
		},
		{
			name: "an unknown publish mode",
			obj: func() Object {
				a := validApp()
				a.Spec.Ports[0].Publish = 80
				a.Spec.Ports[0].PublishMode = "ipvs"
				return a
			},
			want: `App "web": spec.ports[0].publishMode: "ipvs" is not a mode: use kernel or proxy`,
		},
		{
			name: "a publish mode on a port that is not published",
			obj:  func() Object { a := validApp(); a.Spec.Ports[0].PublishMode = PublishProxy; return a },
			want: `App "web": spec.ports[0].publishMode: only a published port has a mode: set publish too`,
		},
		{
			name: "namespace missing when not defaulted",
			obj:  func() Object { a := validApp(); a.Metadata.Namespace = ""; return a },
			want: `App "web": metadata.namespace: required`,
		},
		{
			name: "kind does not match the type",
			obj:  func() Object { a := validApp(); a.Kind = KindNode; return a },
			want: `App "web": kind: "Node" does not match the object's type, App`,
		},
		{
			name: "unknown kind",
			obj:  func() Object { a := validApp(); a.Kind = "Widget"; return a },
			want: `App "web": kind: "Widget" does not match the object's type, App`,
		},
		{
			name: "every problem is listed",
			obj: func() Object {
				a := validApp()
				a.APIVersion = ""
				a.Kind = ""
				a.Metadata.Name = ""
				a.Metadata.Labels = map[string]string{"": "x", long: "y", "ok": long, "ok2": "a\tb"}
				a.Metadata.Revision = -1
				return a
			},
			want: `App: apiVersion: required; kind: required; metadata.name: required; ` +
				`metadata.labels[""]: invalid label key: use at most 63 letters, digits, '.', '_', '-' or '/'; ` +
				`metadata.labels.` + long + `: invalid label key: use at most 63 letters, digits, '.', '_', '-' or '/'; ` +
				`metadata.labels.ok: invalid label value "` + long + `": use at most 63 characters, with no whitespace or control characters; ` +
				`metadata.labels.ok2: invalid label value "a\tb": use at most 63 characters, with no whitespace or control characters; ` +
				`metadata.revision: must not be negative`,
		},
		{
			name: "template problems",
			obj: func() Object {
				a := validApp()
				a.Spec.Image = "nginx\n"
				a.Spec.Command = []string{"sh", "a\x00b"}
				a.Spec.Env = []EnvVar{{Name: ""}, {Name: "X", Value: "\x00"}}
				a.Spec.WorkingDir = "srv"
				a.Spec.Ports = []Port{{Name: "Web", ContainerPort: 80}, {ContainerPort: 80, HostPort: 70000}}
				a.Spec.Resources = Resources{CPU: "0.0001", Memory: "1GB"}
				g := int64(-1)
				a.Spec.TerminationGracePeriodSeconds = &g
				a.Spec.Placement.NodeSelector = map[string]string{"a b": "c"}
				return a
			},
			want: `App "web": spec.image: "nginx\n" must not contain whitespace; ` +
				`spec.command[1]: must not contain NUL characters; ` +
				`spec.env[0].name: required; spec.env[1].value: must not contain NUL characters; ` +
				`spec.workingDir: must be an absolute path; ` +
				`spec.ports[0].name: "Web" is not a valid name: use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters; ` +
				`spec.ports[1].containerPort: 80/TCP is already used by spec.ports[0]; ` +
				`spec.ports[1].hostPort: must be between 0 and 65535; ` +
				`spec.resources.cpu: "0.0001": CPU is counted in millicores; use at most 3 decimal places; ` +
				`spec.resources.memory: "1GB": not a memory quantity (use Mi/Gi, e.g. 128Mi); ` +
				`spec.terminationGracePeriodSeconds: must be between 0 and 3600; ` +
				`spec.placement.nodeSelector["a b"]: invalid label key: use at most 63 letters, digits, '.', '_', '-' or '/'`,
		},
		{
			name: "name too long",
			obj:  func() Object { a := validApp(); a.Metadata.Name = long + long; return a },
			want: `App "` + long + `"...: metadata.name: "` + long + `"... is not a valid name: use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters`,
		},
		{
			name: "name ending in a dash",
			obj:  func() Object { a := validApp(); a.Metadata.Name = "web-"; return a },
			want: `App "web-": metadata.name: "web-" is not a valid name: use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters`,
		},
		{
			name: "instance",
			obj: func() Object {
				i := validInstance()
				i.Spec.App = ""
				i.Spec.Revision = -1
				i.Spec.Node = "Node_1"
				i.Spec.Template.Image = ""
				i.Spec.Template.RestartPolicy = "always"
				return i
			},
			want: `Instance "web-3-x7k2p": spec.app: required (or spec.job); spec.revision: must not be negative; ` +
				`spec.node: "Node_1" is not a valid name: use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters; ` +
				`spec.template.image: required; ` +
				`spec.template.restartPolicy: "always" is not supported: use Always, OnFailure or Never`,
		},
		{
			name: "namespace object with a namespace",
			obj: func() Object {
				return &Namespace{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindNamespace}, Metadata: ObjectMeta{Name: "a", Namespace: "b"}}
			},
			want: `Namespace "a": metadata.namespace: must be empty: this kind is not namespaced`,
		},
		{
			name: "event",
			obj: func() Object {
				return &Event{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindEvent}, Metadata: ObjectMeta{Name: "web..1", Namespace: "default"}, Type: "Error"}
			},
			want: `Event "web..1": metadata.name: "web..1" is not a valid name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters; ` +
				`type: "Error" is not supported: use Normal or Warning`,
		},
		{
			name: "namespace quota",
			obj: func() Object {
				return &Namespace{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindNamespace}, Metadata: ObjectMeta{Name: "a"},
					Spec: NamespaceSpec{Quota: Quota{Objects: 10, Instances: 20, Bytes: "1Mi", CPU: "4", Memory: "8Gi"}}}
			},
		},
		{
			name: "namespace quota out of range",
			obj: func() Object {
				return &Namespace{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindNamespace}, Metadata: ObjectMeta{Name: "a"},
					Spec: NamespaceSpec{Quota: Quota{Objects: -1, Instances: -2, Bytes: "1MB", CPU: "lots", Memory: "-1Gi"}}}
			},
			want: `Namespace "a": spec.quota.objects: must not be negative; spec.quota.instances: must not be negative; ` +
				`spec.quota.bytes: "1MB": not a memory quantity (use Mi/Gi, e.g. 128Mi); spec.quota.memory: "-1Gi": memory must not be negative; ` +
				`spec.quota.cpu: "lots": not a CPU quantity (use cores like 0.5 or millicores like 500m)`,
		},
		{
			name: "namespace isolated",
			obj: func() Object {
				return &Namespace{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindNamespace}, Metadata: ObjectMeta{Name: "a"},
					Spec: NamespaceSpec{Policy: NamespacePolicy{Isolation: IsolationNamespace}}}
			},
		},
		{
			name: "namespace isolation unknown",
			obj: func() Object {
				return &Namespace{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindNamespace}, Metadata: ObjectMeta{Name: "a"},
					Spec: NamespaceSpec{Policy: NamespacePolicy{Isolation: "Namespace"}}}
			},
			want: `Namespace "a": spec.policy.isolation: "Namespace" is not an isolation: want "namespace" (cut off from other namespaces) or none`,
		},
		{
			name: "event message too long",
			obj: func() Object {
				return &Event{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindEvent}, Metadata: ObjectMeta{Name: "web.1", Namespace: "default"}, Type: "Normal",
					Message: strings.Repeat("x", MaxEventMessageBytes+1)}
			},
			want: `Event "web.1": message: 1025 bytes; an event's message holds at most 1024 (1 KiB)`,
		},
		{
			name: "event too large",
			obj: func() Object {
				return &Event{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindEvent}, Metadata: ObjectMeta{Name: "web.1", Namespace: "default"}, Type: "Normal",
					Reason: strings.Repeat("r", MaxEventBytes)}
			},
			want: `Event "web.1": the event is 4269 bytes; an event holds at most 4096 (4 KiB) in all`,
		},
		{
			name: "event steering a terminal",
			obj: func() Object {
				return &Event{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindEvent}, Metadata: ObjectMeta{Name: "web.1", Namespace: "default"}, Type: "Warning",
					Object: "Instance/web-1", Reason: "Exit\rOK", Message: "died\x1b]0;owned\x07", Source: "agent/n\u202e1"}
			},
			want: `Event "web.1": reason: holds a character a terminal acts on (U+000D at byte 4): escape it (api.EscapeTerminal); ` +
				`source: holds a character a terminal acts on (U+202E at byte 7): escape it (api.EscapeTerminal); ` +
				`message: holds a character a terminal acts on (U+001B at byte 4): escape it (api.EscapeTerminal)`,
		},
		{
			name: "event of several lines, made by NewEvent from a hostile message",
			obj: func() Object {
				in := &Instance{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindInstance}, Metadata: ObjectMeta{Name: "web-1", Namespace: "default"}}
				return NewEvent(in, "Warning", "ProbeFailed\n", "line 1\n\tline 2\x1b[2J\x9b", "agent/n1")
			},
		},
		{
			name: "valid user token",
			obj: func() Object {
				tok := NewToken(strings.Repeat("ab", 8), strings.Repeat("0", 64), TokenRoleUser, time.Now().Add(time.Hour), "")
				tok.Spec.User = "ci"
				return tok
			},
		},
		{
			name: "user token without a user",
			obj: func() Object {
				return NewToken(strings.Repeat("ab", 8), strings.Repeat("0", 64), TokenRoleUser, time.Now().Add(time.Hour), "")
			},
			want: `Token "abababababababab": spec.user: required: the user the token acts as`,
		},
		{
			name: "join token naming a user",
			obj: func() Object {
				tok := NewToken(strings.Repeat("ab", 8), strings.Repeat("0", 64), TokenRoleAgent, time.Now().Add(time.Hour), "")
				tok.Spec.User = "ci"
				return tok
			},
			want: `Token "abababababababab": spec.user: only a token of role user acts as a user`,
		},
		{
			name: "join token with negative uses",
			obj: func() Object {
				tok := NewToken(strings.Repeat("ab", 8), strings.Repeat("0", 64), TokenRoleAgent, time.Now().Add(time.Hour), "")
				n := int32(-1)
				tok.Spec.UsesLeft = &n
				return tok
			},
			want: `Token "abababababababab": spec.usesLeft: -1: want 0 to 10000 joins`,
		},
		{
			name: "user token with uses",
			obj: func() Object {
				tok := NewToken(strings.Repeat("ab", 8), strings.Repeat("0", 64), TokenRoleUser, time.Now().Add(time.Hour), "")
				tok.Spec.User = "ci"
				n := int32(2)
				tok.Spec.UsesLeft = &n
				return tok
			},
			want: `Token "abababababababab": spec.usesLeft: only join tokens (agent, server) count uses`,
		},
		{
			name: "token of no role",
			obj: func() Object {
				return NewToken("xyz", "beef", "root", time.Time{}, "")
			},
			want: `Token "xyz": metadata.name: a token's name is its id: 16 hex digits; spec.role: "root" is not a role: use agent, server or user; ` +
				`spec.secretHash: must be the SHA-256 of the secret, 64 hex digits; spec.expiresAt: required: a token must expire`,
		},
		{
			name: "nil",
			obj:  func() Object { return nil },
			want: `no object`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.obj())
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v; want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil; want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("Validate error\n got: %s\nwant: %s", err, tc.want)
			}
			var ie *InvalidError
			if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) || ie.Document != 0 {
				t.Errorf("Validate error %#v is not an *InvalidError for document 0 matching ErrInvalid", err)
			}
		})
	}
}

func TestValidateCapsErrors(t *testing.T) {
	a := validApp()
	a.Spec.Env = make([]EnvVar, 30)
	err := Validate(a)
	var ie *InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("Validate = %v; want an *InvalidError", err)
	}
	if len(ie.Errors) != maxReportedErrors+1 {
		t.Fatalf("got %d errors; want %d and a summary", len(ie.Errors), maxReportedErrors)
	}
	if last := ie.Errors[len(ie.Errors)-1].Error(); last != "and 10 more errors" {
		t.Errorf("last error = %q; want the count of the rest", last)
	}
}

func TestInvalidErrorFormat(t *testing.T) {
	errs := []FieldError{{Path: "spec.replicas", Message: "must not be negative"}, {Path: "spec.image", Message: "required"}}
	tests := []struct {
		err  InvalidError
		want string
	}{
		{InvalidError{Document: 2, Kind: KindApp, Name: "web", Errors: errs}, `document 2 (App "web"): spec.replicas: must not be negative; spec.image: required`},
		{InvalidError{Document: 1, Errors: errs[1:]}, `document 1: spec.image: required`},
		{InvalidError{Document: 1, Kind: KindApp, Errors: errs[1:]}, `document 1 (App): spec.image: required`},
		{InvalidError{Kind: KindApp, Name: "web", Errors: errs[1:]}, `App "web": spec.image: required`},
		{InvalidError{Name: "web", Errors: errs[1:]}, `"web": spec.image: required`},
		{InvalidError{Errors: []FieldError{{Message: "larger than 1 MiB"}}}, `larger than 1 MiB`},
		{InvalidError{}, `invalid`},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%#v.Error()\n got: %s\nwant: %s", tc.err, got, tc.want)
		}
	}
	wrapped := fmt.Errorf("apply: %w", &tests[0].err)
	if !errors.Is(wrapped, ErrInvalid) {
		t.Error("a wrapped *InvalidError does not match ErrInvalid")
	}
	if errors.Is(errors.New("invalid"), ErrInvalid) {
		t.Error("ErrInvalid matches an unrelated error")
	}
}

func TestSetDefaults(t *testing.T) {
	app := &App{
		TypeMeta: TypeMeta{APIVersion: Version, Kind: KindApp},
		Metadata: ObjectMeta{Name: "web"},
		Spec:     AppSpec{Template: Template{Image: "nginx", Ports: []Port{{ContainerPort: 80}, {ContainerPort: 53, Protocol: ProtocolUDP}}}},
	}
	SetDefaults(app)
	SetDefaults(app) // idempotent
	if app.Metadata.Namespace != DefaultNamespace || *app.Spec.Replicas != 1 || app.Spec.RestartPolicy != RestartAlways ||
		*app.Spec.TerminationGracePeriodSeconds != 10 || app.Spec.Ports[0].Protocol != ProtocolTCP || app.Spec.Ports[1].Protocol != ProtocolUDP {
		t.Errorf("SetDefaults(app) = %+v", app)
	}

	zero, grace := int32(0), int64(0)
	set := &App{
		TypeMeta: TypeMeta{APIVersion: Version, Kind: KindApp},
		Metadata: ObjectMeta{Name: "web", Namespace: "team-a"},
		Spec: AppSpec{
			Template: Template{Image: "nginx", RestartPolicy: RestartNever, TerminationGracePeriodSeconds: &grace},
			Replicas: &zero,
		},
	}
	SetDefaults(set)
	if set.Metadata.Namespace != "team-a" || *set.Spec.Replicas != 0 || set.Spec.RestartPolicy != RestartNever || *set.Spec.TerminationGracePeriodSeconds != 0 {
		t.Errorf("SetDefaults changed fields that were set: %+v", set)
	}

	inst := &Instance{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindInstance}, Spec: InstanceSpec{Template: Template{Ports: []Port{{ContainerPort: 80}}}}}
	SetDefaults(inst)
	if inst.Metadata.Namespace != DefaultNamespace || inst.Spec.Template.RestartPolicy != RestartAlways ||
		inst.Spec.Template.TerminationGracePeriodSeconds == nil || inst.Spec.Template.Ports[0].Protocol != ProtocolTCP {
		t.Errorf("SetDefaults(instance) = %+v", inst)
	}

	node := &Node{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindNode}}
	SetDefaults(node)
	if node.Metadata.Namespace != "" {
		t.Errorf("SetDefaults gave a Node namespace %q; nodes are not namespaced", node.Metadata.Namespace)
	}
	SetDefaults(nil) // must not panic
}

func TestEffectiveCapabilities(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sc        *SecurityContext
		has, lack []string
		privilege string
	}{
		{"defaults", nil, []string{"CAP_CHOWN", "CAP_NET_BIND_SERVICE"}, []string{"CAP_NET_RAW", "CAP_SYS_ADMIN"}, ""},
		{"drop one", &SecurityContext{Capabilities: Capabilities{Drop: []string{"chown"}}}, []string{"CAP_KILL"}, []string{"CAP_CHOWN"}, ""},
		{"drop all, add one back", &SecurityContext{Capabilities: Capabilities{Drop: []string{"ALL"}, Add: []string{"NET_BIND_SERVICE"}}}, []string{"CAP_NET_BIND_SERVICE"}, []string{"CAP_CHOWN", "CAP_KILL"}, ""},
		{"add beyond the defaults", &SecurityContext{Capabilities: Capabilities{Add: []string{"CAP_NET_RAW"}}}, []string{"CAP_NET_RAW", "CAP_CHOWN"}, nil, "securityContext.capabilities.add[0] (CAP_NET_RAW)"},
		{"privileged", &SecurityContext{Privileged: true}, []string{"CAP_SYS_ADMIN", "CAP_NET_RAW", "CAP_BPF"}, nil, "securityContext.privileged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caps := tc.sc.EffectiveCapabilities()
			for _, c := range tc.has {
				if !slices.Contains(caps, c) {
					t.Errorf("lacks %s: %v", c, caps)
				}
			}
			for _, c := range tc.lack {
				if slices.Contains(caps, c) {
					t.Errorf("has %s: %v", c, caps)
				}
			}
			if got := tc.sc.NeedsPrivilege(); got != tc.privilege {
				t.Errorf("NeedsPrivilege() = %q, want %q", got, tc.privilege)
			}
		})
	}
}

func TestValidateJob(t *testing.T) {
	job := func(spec string) string {
		return "apiVersion: shoal/v1\nkind: Job\nmetadata: {name: nightly}\nspec:\n  image: x\n" + spec
	}
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"a run", job("  completions: 3\n  parallelism: 2\n"), ""},
		{"a cron job", job("  schedule: \"*/5 * * * *\"\n  timeZone: Europe/Berlin\n  concurrencyPolicy: Forbid\n  startingDeadlineSeconds: 60\n"), ""},
		{"@daily", job("  schedule: \"@daily\"\n"), ""},
		{"restart Always", job("  restartPolicy: Always\n"), "spec.restartPolicy"},
		{"parallelism above completions", job("  completions: 1\n  parallelism: 3\n"), "spec.parallelism"},
		{"no completions", job("  completions: 0\n"), "spec.completions"},
		{"negative backoffLimit", job("  backoffLimit: -1\n"), "spec.backoffLimit"},
		{"zero deadline", job("  activeDeadlineSeconds: 0\n"), "spec.activeDeadlineSeconds"},
		{"bad cron", job("  schedule: \"61 * * * *\"\n"), "spec.schedule"},
		{"six fields", job("  schedule: \"* * * * * *\"\n"), "spec.schedule"},
		{"bad time zone", job("  schedule: \"* * * * *\"\n  timeZone: Mars/Olympus\n"), "spec.timeZone"},
		{"time zone without a schedule", job("  timeZone: UTC\n"), "spec.schedule"},
		{"bad policy", job("  schedule: \"* * * * *\"\n  concurrencyPolicy: Sometimes\n"), "spec.concurrencyPolicy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := Decode([]byte(tc.yaml))
			if err == nil {
				SetDefaults(objs[0])
				err = Validate(objs[0])
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestValidateResources(t *testing.T) {
	app := func(res string) string {
		return "apiVersion: shoal/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: x\n  resources: " + res + "\n"
	}
	for _, tc := range []struct {
		name, res, want string
		req, lim        Amounts
	}{
		{"shorthand is both", "{cpu: 500m, memory: 64Mi}", "", Amounts{MilliCPU: 500, MemoryBytes: 64 << 20}, Amounts{MilliCPU: 500, MemoryBytes: 64 << 20}},
		{"requests and limits", "{requests: {cpu: 250m, memory: 32Mi}, limits: {cpu: \"1\", memory: 128Mi, pids: 100, ephemeralStorage: 1Gi}}", "",
			Amounts{MilliCPU: 250, MemoryBytes: 32 << 20}, Amounts{MilliCPU: 1000, MemoryBytes: 128 << 20, Pids: 100, EphemeralBytes: 1 << 30}},
		{"requests only: no limit", "{requests: {cpu: 250m}}", "", Amounts{MilliCPU: 250}, Amounts{}},
		{"limits override the shorthand", "{cpu: 250m, limits: {cpu: 500m}}", "", Amounts{MilliCPU: 250}, Amounts{MilliCPU: 500}},
		{"limit below request", "{requests: {cpu: 500m}, limits: {cpu: 250m}}", "spec.resources.limits.cpu", Amounts{}, Amounts{}},
		{"memory limit below the shorthand", "{memory: 128Mi, limits: {memory: 64Mi}}", "spec.resources.limits.memory", Amounts{}, Amounts{}},
		{"bad quantity", "{limits: {memory: 12MB}}", "spec.resources.limits.memory", Amounts{}, Amounts{}},
		{"pids as a request", "{requests: {pids: 10}}", "spec.resources.requests", Amounts{}, Amounts{}},
		{"negative pids", "{limits: {pids: -1}}", "spec.resources.limits.pids", Amounts{}, Amounts{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := Decode([]byte(app(tc.res)))
			if err == nil {
				err = Validate(objs[0])
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err %v, want one naming %s", err, tc.want)
			case tc.want == "":
				r := objs[0].(*App).Spec.Resources
				if r.Request() != tc.req || r.Limit() != tc.lim {
					t.Fatalf("request %+v limit %+v, want %+v and %+v", r.Request(), r.Limit(), tc.req, tc.lim)
				}
			}
		})
	}
}

func TestNewEventClipsItsMessage(t *testing.T) {
	app := &App{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindApp}, Metadata: ObjectMeta{Name: "web", Namespace: "default"}}
	ev := NewEvent(app, "Warning", "PullFailed", strings.Repeat("é", MaxEventMessageBytes), "agent/n1")
	if len(ev.Message) > MaxEventMessageBytes || !utf8.ValidString(ev.Message) || !strings.HasSuffix(ev.Message, " …") {
		t.Errorf("NewEvent message is %d bytes (valid UTF-8: %v), ending %q; want at most %d, cut with \" …\"", len(ev.Message), utf8.ValidString(ev.Message), ev.Message[len(ev.Message)-8:], MaxEventMessageBytes)
	}
	if err := Validate(ev); err != nil {
		t.Errorf("Validate(NewEvent(long message)) = %v; want nil", err)
	}
}
