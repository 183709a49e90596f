package main

// The transports and result backends the binary can open, chosen by URL
// scheme at run time.
import (
	_ "github.com/celeriac/celeriac/backend/memory"
	_ "github.com/celeriac/celeriac/backend/redis"
	_ "github.com/celeriac/celeriac/backend/rpc"
	_ "github.com/celeriac/celeriac/broker/amqp"
	_ "github.com/celeriac/celeriac/broker/memory"
	_ "github.com/celeriac/celeriac/broker/redis"
)
