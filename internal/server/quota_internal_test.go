package server

import (
	"math"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
)

func TestUsageOf(t *testing.T) {
	i32 := func(n int32) *int32 { return &n }
	app := func(replicas *int32, res api.Resources, as *api.Autoscale) *api.App {
		return &api.App{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindApp}, Metadata: api.ObjectMeta{Namespace: "web", Name: "a"},
			Spec: api.AppSpec{Template: api.Template{Image: "nginx", Resources: res}, Replicas: replicas, Autoscale: as}}
	}
	job := func(par *int32, res api.Resources, state api.JobState) *api.Job {
		return &api.Job{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindJob}, Metadata: api.ObjectMeta{Namespace: "web", Name: "j"},
			Spec: api.JobSpec{Template: api.Template{Image: "busybox", Resources: res}, Parallelism: par}, Status: api.JobStatus{State: state}}
	}
	secret := &api.Secret{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindSecret}, Metadata: api.ObjectMeta{Namespace: "web", Name: "s"}}
	tests := []struct {
		name string
		obj  api.Object
		want api.QuotaAmounts // Bytes not compared
	}{
		{"app, replicas × request", app(i32(3), api.Resources{CPU: "250m", Memory: "128Mi"}, nil), api.QuotaAmounts{Objects: 1, Instances: 3, MilliCPU: 750, MemoryBytes: 3 << 27}},
		{"requests override the shorthand", app(i32(2), api.Resources{CPU: "2", Requests: &api.ResourceList{CPU: "100m"}}, nil), api.QuotaAmounts{Objects: 1, Instances: 2, MilliCPU: 200}},
		{"unset replicas are one", app(nil, api.Resources{CPU: "1"}, nil), api.QuotaAmounts{Objects: 1, Instances: 1, MilliCPU: 1000}},
		{"zero replicas ask nothing", app(i32(0), api.Resources{CPU: "1"}, nil), api.QuotaAmounts{Objects: 1}},
		{"autoscaled: its max", app(i32(1), api.Resources{CPU: "500m"}, &api.Autoscale{Min: 1, Max: 10}), api.QuotaAmounts{Objects: 1, Instances: 10, MilliCPU: 5000}},
		{"no request: instances only", app(i32(4), api.Resources{}, nil), api.QuotaAmounts{Objects: 1, Instances: 4}},
		{"job, parallelism × request", job(i32(5), api.Resources{Memory: "1Gi"}, api.JobRunning), api.QuotaAmounts{Objects: 1, Instances: 5, MemoryBytes: 5 << 30}},
		{"unset parallelism is one", job(nil, api.Resources{CPU: "1"}, ""), api.QuotaAmounts{Objects: 1, Instances: 1, MilliCPU: 1000}},
		{"a finished job asks nothing but its place", job(i32(5), api.Resources{CPU: "1"}, api.JobComplete), api.QuotaAmounts{Objects: 1}},
		{"failed too", job(i32(5), api.Resources{CPU: "1"}, api.JobFailed), api.QuotaAmounts{Objects: 1}},
		{"secret", secret, api.QuotaAmounts{Objects: 1}},
		{"memory that would overflow saturates", app(i32(10000), api.Resources{Memory: "7Ei"}, nil), api.QuotaAmounts{Objects: 1, Instances: 10000, MemoryBytes: math.MaxInt64}},
		{"instances are not counted", &api.Instance{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance}}, api.QuotaAmounts{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := usageOf(tc.obj)
			if (got.Bytes > 0) != (tc.want.Objects > 0) {
				t.Errorf("usageOf bytes = %d; want some exactly when the object counts", got.Bytes)
			}
			got.Bytes = 0
			if got != tc.want {
				t.Errorf("usageOf = %+v; want %+v", got, tc.want)
			}
		})
	}
}

func TestExceeded(t *testing.T) {
	limit := api.Quota{Objects: 10, Instances: 20, Bytes: "1Ki", CPU: "2"}.Limits()
	u := func(objects, instances, bytes, milliCPU, mem int64) api.QuotaAmounts {
		return api.QuotaAmounts{Objects: objects, Instances: instances, Bytes: bytes, MilliCPU: milliCPU, MemoryBytes: mem}
	}
	tests := []struct {
		name          string
		before, after api.QuotaAmounts
		want          string // the figure refused, "" for none
	}{
		{"within every figure", u(1, 1, 100, 500, 0), u(2, 3, 200, 1000, 0), ""},
		{"at the limit is fine", u(9, 19, 1000, 1900, 0), u(10, 20, 1024, 2000, 0), ""},
		{"one object too many", u(10, 1, 100, 0, 0), u(11, 1, 200, 0, 0), "objects"},
		{"instances", u(1, 20, 100, 0, 0), u(1, 21, 100, 0, 0), "instances"},
		{"bytes", u(1, 1, 1000, 0, 0), u(1, 1, 1025, 0, 0), "bytes"},
		{"cpu", u(1, 1, 100, 1500, 0), u(1, 1, 100, 2001, 0), "cpu"},
		{"memory is unbounded when unset", u(1, 1, 100, 0, 0), u(1, 1, 100, 0, math.MaxInt64), ""},
		{"the first figure over is named", u(0, 0, 0, 0, 0), u(11, 21, 2000, 3000, 0), "objects"},
		{"already over and shrinking: allowed", u(15, 30, 100, 5000, 0), u(14, 25, 100, 4000, 0), ""},
		{"already over and not growing: allowed", u(15, 30, 100, 5000, 0), u(15, 30, 100, 5000, 0), ""},
		{"already over and growing: refused", u(15, 1, 100, 0, 0), u(16, 1, 100, 0, 0), "objects"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if f := exceeded(tc.before, tc.after, limit); f != nil {
				got = f.field
			}
			if got != tc.want {
				t.Errorf("exceeded(%+v → %+v) = %q; want %q", tc.before, tc.after, got, tc.want)
			}
		})
	}
}

func TestQuotaLimitsDefaults(t *testing.T) {
	got := api.Quota{}.Limits()
	want := api.QuotaAmounts{Objects: api.DefaultQuotaObjects, Instances: api.DefaultQuotaInstances, Bytes: api.DefaultQuotaBytes}
	if got != want {
		t.Errorf("Quota{}.Limits() = %+v; want %+v (no cpu or memory limit)", got, want)
	}
}
