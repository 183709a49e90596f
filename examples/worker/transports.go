package main

// The transports and result backends this worker can open, chosen by URL
// scheme at run time (amqp:// for RabbitMQ, memory:// in the tests).
import (
	_ "github.com/celeriac/celeriac/backend/memory"
	_ "github.com/celeriac/celeriac/backend/redis"
	_ "github.com/celeriac/celeriac/broker/amqp"
	_ "github.com/celeriac/celeriac/broker/memory"
)
