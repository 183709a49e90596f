// Command ceiling is the worker benchmark's anchor: a bare amqp091-go
// consumer that acks N messages from a queue and does nothing else. No
// Celery worker can drain a queue faster over the same connection settings.
package main

import (
	"flag"
	"fmt"
	"log"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func main() {
	url := flag.String("url", "amqp://guest:guest@127.0.0.1:5672/", "broker URL")
	queue := flag.String("queue", "", "queue to drain")
	n := flag.Int("n", 20000, "messages to ack")
	prefetch := flag.Int("prefetch", 8, "basic.qos prefetch count")
	flag.Parse()
	conn, err := amqp.Dial(*url)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		log.Fatal(err)
	}
	if err := ch.Qos(*prefetch, 0, false); err != nil {
		log.Fatal(err)
	}
	ds, err := ch.Consume(*queue, "ceiling", false, false, false, false, nil)
	if err != nil {
		log.Fatal(err)
	}
	var start time.Time
	for i := 0; i < *n; i++ {
		d, ok := <-ds
		if !ok {
			log.Fatalf("channel closed after %d messages", i)
		}
		if i == 0 {
			start = time.Now()
		}
		if err := d.Ack(false); err != nil {
			log.Fatal(err)
		}
	}
	el := time.Since(start)
	fmt.Printf("%.1f\n", float64(*n-1)/el.Seconds())
}
