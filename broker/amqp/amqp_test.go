package amqp_test

import (
	"testing"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/broker/brokertest"
	"github.com/celeriac/celeriac/internal/testenv"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	url := testenv.AMQPURL(t)
	rec := newRecorder(t, url)
	brokertest.Run(t, brokertest.Harness{
		Open: func(t *testing.T) broker.Broker {
			return openWith(t, rec, []string{url}, broker.Options{Name: "celeriac-conformance"})
		},
		DelayResolution: 2e9,
	})
}
