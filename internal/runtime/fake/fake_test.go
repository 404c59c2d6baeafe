package fake_test

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/runtime/fake"
	"github.com/shoal-dev/shoal/internal/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	d := fake.New()
	d.ExecFunc = func(_ context.Context, _ string, cmd []string, _ time.Duration) (int, string, error) {
		return 3, "to stderr\n", nil
	}
	runtimetest.Run(t, runtimetest.Suite{
		Driver: d, Image: "shoal.local/any:v1", ExecCmd: []string{"exit", "3"}, ExecOutput: "to stderr", ExecCode: 3, CatCmd: []string{"cat"},
	})
}
