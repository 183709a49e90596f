package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/celeriac/celeriac/beat"
)

// openDjangoSource opens django-celery-beat's tables as a schedule source.
var openDjangoSource = func(ctx context.Context, url string, log *slog.Logger) (beat.Source, func(), error) {
	return nil, nil, errors.New("django-celery-beat support is not built in")
}
