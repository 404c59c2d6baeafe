package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/runtime"
)

// hostTree makes, in a temporary directory (resolved: the test's own
// temporary directory may be below a link):
//
//	allowed/data/file
//	allowed/inside -> data            stays inside allowed
//	allowed/escape -> ../secret       leads out of it
//	allowed/root   -> /               leads to the host's root
//	allowed/hop    -> escape          a link to one leading out
//	secret/
//	alias          -> allowed         an allowed path that is a link
func hostTree(t *testing.T) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"allowed/data", "secret"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "allowed/data/file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"allowed/inside": "data", "allowed/escape": "../secret", "allowed/root": "/", "allowed/hop": "escape", "alias": "allowed"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestResolveMounts: a volume is mounted from where its path really
// leads, and refused when a symbolic link takes it outside what the
// owner or the namespace allows.
func TestResolveMounts(t *testing.T) {
	root := hostTree(t)
	p := func(rel string) string { return filepath.Join(root, rel) }
	owner := func(paths ...string) pathRule { return pathRule{"node n1's owner", paths} }
	ns := func(paths ...string) pathRule { return pathRule{`namespace "ops"'s policy`, paths} }
	for _, tc := range []struct {
		name     string
		hostPath string
		readOnly bool
		rules    []pathRule
		want     string // the source mounted, or the error
	}{
		{"a directory", p("allowed/data"), false, []pathRule{owner(p("allowed")), ns(p("allowed"))}, p("allowed/data")},
		{"a file, read-only", p("allowed/data/file"), true, []pathRule{owner(p("allowed"))}, p("allowed/data/file")},
		{"a link staying inside: its target is mounted", p("allowed/inside"), false, []pathRule{owner(p("allowed"))}, p("allowed/data")},
		{"through a link staying inside", p("allowed/inside/file"), false, []pathRule{owner(p("allowed"))}, p("allowed/data/file")},
		{"a link leading out", p("allowed/escape"), false, []pathRule{owner(p("allowed"))},
			"volumes[0] (v): hostPath " + p("allowed/escape") + " leads to " + p("secret") + ", outside what node n1's owner allows (" + p("allowed") + ")"},
		{"a link to the host's root", p("allowed/root"), false, []pathRule{owner(p("allowed")), ns("/")},
			"hostPath " + p("allowed/root") + " leads to /, outside what node n1's owner allows"},
		{"below a link to the host's root", p("allowed/root/etc"), false, []pathRule{owner(p("allowed"))},
			"leads to /etc, outside what node n1's owner allows"},
		{"a link to a link leading out", p("allowed/hop"), false, []pathRule{owner(p("allowed"))},
			"leads to " + p("secret") + ", outside"},
		{"an allowed path that is a link", p("alias/data"), false, []pathRule{owner(p("alias"))}, p("allowed/data")},
		{"the owner allows it, the namespace does not", p("allowed/escape"), false, []pathRule{owner(root), ns(p("allowed"))},
			`leads to ` + p("secret") + `, outside what namespace "ops"'s policy allows (` + p("allowed") + `)`},
		{"nothing allowed", p("allowed/data"), false, []pathRule{owner()}, "outside what node n1's owner allows (none)"},
		{"/ allows anything", p("allowed/root"), false, []pathRule{owner("/")}, "/"},
		{"a path that does not exist", p("allowed/nope"), false, []pathRule{owner(p("allowed"))}, "volumes[0] (v): hostPath " + p("allowed/nope") + ": lstat " + p("allowed/nope") + ": no such file or directory"},
	} {
		got, err := resolveMounts([]api.Volume{{Name: "v", HostPath: tc.hostPath, MountPath: "/host", ReadOnly: tc.readOnly}}, tc.rules...)
		if strings.HasPrefix(tc.want, "/") {
			want := runtime.Mount{Source: tc.want, Destination: "/host", ReadOnly: tc.readOnly}
			if err != nil || len(got) != 1 || got[0] != want {
				t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %+v, %v; want an error with %q", tc.name, got, err, tc.want)
		}
	}
}

// TestMountsCheckTheNamespacesPaths: the agent checks resolved paths
// against its owner's allowed host paths and the namespace's, as a server
// says them.
func TestMountsCheckTheNamespacesPaths(t *testing.T) {
	root := hostTree(t)
	a := New(Config{NodeName: "n1", Log: slog.New(slog.DiscardHandler), DataDir: t.TempDir(),
		Client: namespaceServer(t, map[string]api.NamespacePolicy{"ops": {AllowHostPaths: []string{filepath.Join(root, "allowed")}}}),
		Owner:  OwnerPolicy{AllowHostPaths: []string{root}}})
	in := func(ns, rel string) *api.Instance {
		return &api.Instance{Metadata: api.ObjectMeta{Namespace: ns, Name: "x"}, Spec: api.InstanceSpec{Template: api.Template{
			Volumes: []api.Volume{{Name: "data", HostPath: filepath.Join(root, "allowed/inside"), MountPath: "/a"}, {Name: "other", HostPath: filepath.Join(root, rel), MountPath: "/b"}}}}}
	}
	got, err := a.mounts(context.Background(), in("ops", "allowed/data/file"))
	if err != nil || len(got) != 2 || got[0].Source != filepath.Join(root, "allowed/data") || got[1].Source != filepath.Join(root, "allowed/data/file") {
		t.Errorf("inside the namespace's paths: %+v, %v", got, err)
	}
	if _, err := a.mounts(context.Background(), in("ops", "allowed/escape")); err == nil || !strings.Contains(err.Error(), `volumes[1] (other): hostPath `+filepath.Join(root, "allowed/escape")+` leads to `+filepath.Join(root, "secret")+`, outside what namespace "ops"'s policy allows`) {
		t.Errorf("a link out of the namespace's paths: %v", err)
	}
	// A namespace that does not exist allows no host path.
	if _, err := a.mounts(context.Background(), in("other", "allowed/data")); err == nil || !strings.Contains(err.Error(), `volumes[0] (data): hostPath `+filepath.Join(root, "allowed/inside")+` leads to `+filepath.Join(root, "allowed/data")+`, outside what namespace "other"'s policy allows (none)`) {
		t.Errorf("a namespace without a policy: %v", err)
	}
}
