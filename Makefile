# deepcast: the project's vocabulary. `make demo` and `make test` work on a
# fresh Debian machine: both run `make deps` first.
GO        ?= go
BIN       := bin/deepcast
DEMO_DIR  ?= demo
FUZZTIME  ?= 5s

.PHONY: all build image deps demo test unit fuzz lint bench lab soak clean

all: build

# One self-contained binary: the web pages' npm packages (web/node_modules,
# `npm ci`) are copied into web/dist, the ABR core is compiled to
# WebAssembly into web/dist/abr, both embedded; version, commit and build
# date are stamped in.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)

build: web/node_modules/.package-lock.json
	GO=$(GO) $(GO) run ./web/internal/mkdist web/node_modules web/dist
	$(GO) build -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)" -o $(BIN) ./cmd/deepcast

# The container image, without a container daemon: the static binary (web
# packages embedded) on an empty base, as an OCI layout in $(IMAGE) and
# $(IMAGE).tar (podman load / docker load / skopeo copy take it).
IMAGE ?= bin/image
image: web/node_modules/.package-lock.json
	GO=$(GO) $(GO) run ./web/internal/mkdist web/node_modules web/dist
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)" -o $(IMAGE)-deepcast ./cmd/deepcast
	$(GO) run ./cmd/mkimage -bin $(IMAGE)-deepcast -o $(IMAGE) -tag deepcast:$(VERSION) -version $(VERSION)

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund

deps:
	@bash .ci/deps.sh

# The whole CDN on this machine until Ctrl-C: sample, origin, edges, pages, an ABR run.
demo: deps build
	$(BIN) demo -dir $(DEMO_DIR)

test: deps
	$(GO) vet ./...
	@echo "building versitygw, the S3 server the tests run (a go tool of this module; cached after the first time)"
	$(GO) tool -n versitygw >/dev/null
	@# cmd/deepcast's end-to-end tests take 18 to 20 minutes under -race on
	@# two shared cores (and the other packages share the cores with them):
	@# the bound leaves room for a slower machine, not for a hang.
	$(GO) test -race -count=1 -timeout 35m ./...
	DEEPCAST_LAB=short $(GO) test -count=1 -run '^TestFaultLab$$' -v -timeout 10m ./cmd/deepcast
	@$(MAKE) --no-print-directory fuzz

# A short run of every fuzz target (go test -fuzz takes one target at a time).
# Go 1.26's fuzz coordinator can end a run at the end of -fuzztime with
# "context deadline exceeded" and no crasher (golang/go#75804, fixed in Go
# 1.27), sometimes twice in a row. A real finding always says "Failing input
# written to" (the input is kept in testdata/fuzz, and plain `go test` runs
# it from then on), and fails at once; a run that failed only with that
# spurious deadline error is tried up to three times.
# The coordinator kills its workers at the end, before their tests' cleanup
# runs: their temporary folders go to one of the run's own, removed after.
fuzz:
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; trap 'exit 1' INT TERM; \
	for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$t"; \
	    for try in 1 2 3; do \
	      out=$$(TMPDIR=$$tmp $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) && break; \
	      if echo "$$out" | grep -q 'Failing input written to' || ! echo "$$out" | grep -q 'context deadline exceeded'; then \
	        echo "$$out"; echo "fuzz $$pkg $$t failed"; exit 1; fi; \
	      echo "fuzz $$pkg $$t: spurious deadline error at the end of -fuzztime (golang/go#75804), try $$try of 3"; \
	    done; \
	  done; \
	done

lint:
	gofmt -l . | (! grep .)
	$(GO) vet ./...
	# The ABR core also builds for the browser (WebAssembly), without the
	# files that are not for it.
	GOOS=js GOARCH=wasm $(GO) build -o /dev/null ./player/
	$(GO) run honnef.co/go/tools/cmd/staticcheck@latest ./...

bench: deps build
	@DEEPCAST_DEPS_BENCH=1 bash .ci/deps.sh
	bash .ci/bench.sh

# The fault lab at full length (root: network namespaces): 40 viewers and a
# browser over a 2-minute asset while nodes die, links drop and disks fill.
# `make test` runs the short version. The report is also in lab-report.md.
lab: deps
	DEEPCAST_LAB=full DEEPCAST_LAB_OUT=$(CURDIR)/lab-report.md $(GO) test -count=1 -run '^TestFaultLab$$' -v -timeout 30m ./cmd/deepcast

# Ten minutes of mixed load through origin, bring-home and enter-deep:
# wrk over many keys, playing sessions, purges, a cache 3x over capacity.
# The report is also in soak-report.md.
soak: deps
	DEEPCAST_SOAK=1 DEEPCAST_SOAK_OUT=$(CURDIR)/soak-report.md $(GO) test -count=1 -run '^TestSoak$$' -v -timeout 30m ./cmd/deepcast

clean:
	rm -rf bin $(DEMO_DIR)
