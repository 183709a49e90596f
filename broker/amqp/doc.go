// Package amqp is the RabbitMQ transport, on github.com/rabbitmq/amqp091-go.
// Importing it registers the URL schemes amqp, amqps and Celery's aliases
// pyamqp and pyamqps with broker.Open:
//
//	import _ "github.com/celeriac/celeriac/broker/amqp"
//
//	b, err := broker.Open(ctx, "amqp://guest:guest@localhost:5672//", broker.Options{Name: "billing-worker"})
//
// # URLs
//
// URLs are read as kombu reads them: the vhost is the path without its
// first slash, so "//" and an empty path both mean "/"; missing credentials
// are guest/guest, the port 5672 (5671 for amqps). Query parameters:
// heartbeat and connect_timeout (seconds; heartbeat=0 takes the server's
// interval, as amqp091-go cannot switch heartbeats off), and for amqps kombu's
// broker_use_ssl keys ssl_ca_certs, ssl_certfile, ssl_keyfile,
// ssl_cert_reqs (CERT_NONE disables verification) and ssl_server_hostname;
// without them the system roots verify the server. Several URLs (Celery's
// "a;b" form) are a failover list: the first that answers is used, and a
// lost connection is replaced by trying the list again with exponential
// backoff between broker.Options.MinBackoff and MaxBackoff. Passwords never
// appear in logs or errors.
//
// # Topology
//
// Declare creates the exchange, queue and binding with exactly the flags and
// arguments given (broker.TaskQueue is what Celery 5.2 declares), so Python
// and Go workers share queues. Integer arguments are sent as py-amqp sends
// them (32-bit when they fit), because RabbitMQ compares declare arguments
// by type. Declares run on a throwaway channel: a mismatch with an existing
// queue (406 PRECONDITION_FAILED) is returned as *broker.DeclareMismatchError
// and harms no other user of the connection.
//
// # Publishing
//
// Publishes use publisher confirms on one channel per connection, pipelined:
// each caller waits only for its own confirm. A broker nack returns
// broker.ErrNotConfirmed. Publishes to the default exchange (to a queue by
// name, as Celery sends tasks) are mandatory, and one that reaches no queue
// returns broker.ErrUnroutable instead of vanishing; publishes to named
// exchanges (events, broadcasts) may reach nobody. A publish cut short by a
// lost connection is sent again on the next one (at-least-once).
//
// Header values map both ways: nested maps become tables, slices arrays,
// and received integers are int64. Python writes integers above 2^31-1
// with the field type 'L', which amqp091-go cannot read; the connection
// rewrites that type byte in received message headers before amqp091-go
// parses them (longfix.go). The other way round, amqp091-go writes 64-bit
// integers as 'l', which py-amqp reads as unsigned: header integers below
// -2^31 sent from Go reach Python workers wrong. RabbitMQ does the same to
// Python's own such values whenever it dead-letters a message, and Celery's
// headers never hold them.
//
// # Consuming
//
// Each consumer has its own channel with a per-consumer prefetch (basic.qos
// with global=false, which quorum queues require). After a reconnect it
// declares its queues again and resumes on the new connection; acking a
// delivery from the lost connection returns broker.ErrStaleDelivery
// (RabbitMQ has requeued it), and after Close settling returns an error
// matching both broker.ErrClosed and broker.ErrStaleDelivery. A cancelled
// consumer's channel stays open until the deliveries it handed out are
// settled. RabbitMQ applies a new per-consumer prefetch only to consumers
// started after it, so SetPrefetch starts a fresh consumer on each queue
// and cancels the old one; deliveries the old one still holds do not count
// against the new limit until they are settled. A consumer the broker
// cancels (its queue was deleted) is resubscribed, declaring the queue again.
//
// Open fails if no URL of the list answers once, so a wrong address or
// password is reported at start-up; after that, losses are repaired in the
// background and calls wait for the new connection, bounded by their ctx.
//
// # Delayed delivery (PublishAt)
//
// PublishAt keeps a message inside RabbitMQ until it is due, with no plugin
// and nothing held in the worker's memory. It uses a ladder of durable
// entities declared on first use:
//
//	celeriac.delay.N     (N = 0…27) a headers exchange and a durable queue
//	                     with x-message-ttl 2^N s, dead-lettering to level N-1;
//	                     the exchange's alternate-exchange is level N-1 too
//	celeriac.delay.out   a headers exchange after level 0
//	celeriac.delay.to.X  per target exchange X ("amq.default" for the default
//	                     exchange): x-message-ttl 0, dead-lettering to X
//
// The delay, rounded to whole seconds, is written in binary into headers
// celeriac-delay-N = "1" for each set bit N, plus celeriac-delay-to = X. The
// message enters at the exchange of its highest set bit. At each level the
// exchange routes it to that level's queue if its bit is set (it waits 2^N
// seconds, then is dead-lettered to the next level), or else straight on
// through the alternate exchange. After level 0 the out exchange picks the
// target's last-hop queue by celeriac-delay-to; there the message expires at
// once and is dead-lettered to X with its original routing key. So a delay
// of 13 s waits 8 s, 4 s and 1 s in three queues. Every queue has one TTL,
// so messages expire in order at its head; all entities are durable and the
// messages keep their delivery mode, so delayed tasks survive restarts of
// the worker and of RabbitMQ. The target may be any queue type, quorum
// included. Per-message TTL (expiration) is removed for the trip, as it
// would make the message leave a level early; Celery's expires header is
// kept. Consumers of this package strip the ladder headers and x-death on
// arrival; Python consumers see them as extra headers, which Celery ignores.
// The maximum delay is MaxDelay (about 8.5 years). PublishAt refuses a
// target queue or exchange that does not exist (broker.ErrUnroutable), since
// the message would otherwise vanish when due. Moves between levels are
// RabbitMQ's dead-lettering, which is not publisher-confirmed: a message
// could be lost if a node fails at the instant it moves.
package amqp
