package main

import (
	"context"
	"log/slog"

	"github.com/celeriac/celeriac/beat"
	"github.com/celeriac/celeriac/beat/djangobeat"
)

// openDjangoSource opens django-celery-beat's tables as a schedule source.
func openDjangoSource(ctx context.Context, url string, log *slog.Logger) (beat.Source, func(), error) {
	src, err := djangobeat.New(ctx, djangobeat.Config{URL: url, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	return src, src.Close, nil
}
