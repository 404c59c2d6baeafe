package api

import "testing"

func TestUpdateDefaults(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		ports                 []Port
		surge, unavail        *int32
		wantSurge, wantUnavai int32
	}{
		{name: "plain app surges", wantSurge: 1, wantUnavai: 0},
		{name: "published port surges", ports: []Port{{ContainerPort: 80, Publish: 30080}}, wantSurge: 1, wantUnavai: 0},
		{name: "host port replaces in place", ports: []Port{{ContainerPort: 80, HostPort: 8080}}, wantSurge: 0, wantUnavai: 1},
		{name: "explicit settings win", ports: []Port{{ContainerPort: 80, HostPort: 8080}}, surge: ptr(int32(2)), wantSurge: 2, wantUnavai: 0},
		{name: "maxUnavailable alone means no surge", unavail: ptr(int32(2)), wantSurge: 0, wantUnavai: 2},
	} {
		a := &App{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindApp}, Metadata: ObjectMeta{Name: "web"},
			Spec: AppSpec{Template: Template{Image: "x", Ports: tc.ports}, Update: Update{MaxSurge: tc.surge, MaxUnavailable: tc.unavail}}}
		SetDefaults(a)
		if *a.Spec.Update.MaxSurge != tc.wantSurge || *a.Spec.Update.MaxUnavailable != tc.wantUnavai {
			t.Errorf("%s: maxSurge %d maxUnavailable %d, want %d %d", tc.name, *a.Spec.Update.MaxSurge, *a.Spec.Update.MaxUnavailable, tc.wantSurge, tc.wantUnavai)
		}
		if err := Validate(a); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }
