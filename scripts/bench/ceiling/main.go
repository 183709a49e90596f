// Command ceiling is the worker benchmark's anchor: a bare amqp091-go
// consumer that acks N messages from a queue and does nothing else. No
// Celery worker can drain a queue faster over the same connection settings.
//
// With -publish it is the publish rows' reference instead: it takes one
// message from the queue and publishes N copies of it back with publisher
// confirms, all in flight at once, which is as fast as this broker takes
// that message confirmed.
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
	publish := flag.Bool("publish", false, "publish n confirmed copies of the queue's first message instead")
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
	if *publish {
		publishCopies(ch, *queue, *n)
		return
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

func publishCopies(ch *amqp.Channel, queue string, n int) {
	d, ok, err := ch.Get(queue, true)
	if err != nil || !ok {
		log.Fatalf("no message to copy in %q: %v", queue, err)
	}
	msg := amqp.Publishing{Headers: d.Headers, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: d.DeliveryMode, Priority: d.Priority, CorrelationId: d.CorrelationId, ReplyTo: d.ReplyTo, Body: d.Body}
	if err := ch.Confirm(false); err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	confirms := make([]*amqp.DeferredConfirmation, 0, n)
	for range n {
		dc, err := ch.PublishWithDeferredConfirm("", queue, false, false, msg)
		if err != nil {
			log.Fatal(err)
		}
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		if !dc.Wait() {
			log.Fatal("a publish was not confirmed")
		}
	}
	fmt.Printf("%.1f\n", float64(n)/time.Since(start).Seconds())
}
