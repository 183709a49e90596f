package memory_test

import (
	"testing"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/broker/brokertest"
	"github.com/celeriac/celeriac/broker/memory"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	srv := memory.NewServer()
	t.Cleanup(srv.Shutdown)
	brokertest.Run(t, brokertest.Harness{
		Open:            func(t *testing.T) broker.Broker { return srv.Connect() },
		DelayResolution: 200 * 1e6,
	})
}
