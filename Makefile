# celeriac — `make help` lists the targets.
GO        ?= go
PKGS      ?= ./...
TEST_TIMEOUT ?= 14m
export REQUIRE_INTEGRATION ?= 1

.PHONY: help build test test-unit test-race deps lint fmt bench chaos e2e clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/celeriac (static, CGO disabled)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/celeriac ./cmd/celeriac

deps: ## install Debian packages the tests need and start stopped services
	./scripts/test-deps.sh

test: deps ## everything: vet, then all tests with -race against the real servers
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

test-unit: ## unit tests only (no servers needed)
	$(GO) test -short -count=1 $(PKGS)

lint: ## gofmt, go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

bench: deps build ## benchmarks against real servers and peers; prints ratio tables
	./scripts/bench.sh

chaos: deps ## the exactly-once fault-injection test at full size
	CELERIAC_CHAOS=full $(GO) test -count=1 -timeout 30m -run 'Chaos' -v ./worker/...

e2e: deps build ## the examples/ end-to-end tour (screenshot kept in bin/e2e/)
	mkdir -p bin/e2e
	$(GO) test -count=1 -timeout 10m -v -artifacts -outputdir $(CURDIR)/bin/e2e ./examples/...

clean: ## remove build output
	rm -rf bin
