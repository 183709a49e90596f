package redis

import (
	"testing"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/broker/brokertest"
)

func TestConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Harness{
		Open: func(t *testing.T) broker.Broker {
			b := open(t, Config{})
			return b
		},
		InvertedPriority:  true,
		NoDeadLetter:      true, // kombu's Redis transport has none (doc.go)
		NoDeclareMismatch: true, // Redis stores no queue arguments (doc.go)
	})
}
