// Package devmode runs the whole celeriac system in one process with no
// servers to install: an embedded Redis-protocol server (miniredis) serves
// as broker, result backend and lock store, a worker runs the built-in tasks
// and any a Go program registers, and, given a schedule, beat sends its
// periodic tasks.
//
// A Django project points CELERY_BROKER_URL and CELERY_RESULT_BACKEND at the
// URLs Server.BrokerURL and Server.BackendURL report, and its
// `add.delay(2, 3)` runs in Go.
//
// It is a development mode, not for production: the embedded server keeps
// everything in memory, loses it on exit, and is single-threaded.
package devmode
