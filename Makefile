# meshnode build and test entry points. `make test` is what CI runs (.ci/run).
GO        ?= go
BIN       ?= bin/meshnode
PKGS      ?= ./...
FUZZTIME  ?= 60s
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/meshnode/meshnode/internal/buildinfo.Version=$(VERSION)

.PHONY: all build test run bench bench-node bench-report fuzz vet fmt clean install uninstall

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/meshnode

vet:
	$(GO) vet $(PKGS)

test: vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# install: the binary to $(PREFIX)/bin, the systemd units to
# $(PREFIX)/lib/systemd/system (on systemd's search path for /usr/local and
# /usr; ExecStart is rewritten to the installed binary), and /etc/meshnode
# with the example configs the units name (config.toml, directory.toml),
# never overwriting an existing file. DESTDIR stages a package root;
# NOBUILD=1 installs an already built $(BIN) as is.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
install: $(if $(NOBUILD),,build)
	install -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/meshnode
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/meshnode
	for u in meshnode.service meshnode-directory.service; do \
	  sed -e 's|/usr/local/bin/meshnode|$(BINDIR)/meshnode|g' -e 's|/etc/meshnode/|$(SYSCONFDIR)/meshnode/|g' \
	    configs/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; \
	done
	test -e $(DESTDIR)$(SYSCONFDIR)/meshnode/config.toml || install -m 0644 configs/server.toml $(DESTDIR)$(SYSCONFDIR)/meshnode/config.toml
	test -e $(DESTDIR)$(SYSCONFDIR)/meshnode/directory.toml || install -m 0644 configs/directory.toml $(DESTDIR)$(SYSCONFDIR)/meshnode/directory.toml
	@echo "installed $(DESTDIR)$(BINDIR)/meshnode; units in $(DESTDIR)$(UNITDIR); edit $(DESTDIR)$(SYSCONFDIR)/meshnode/*.toml"

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/meshnode $(DESTDIR)$(UNITDIR)/meshnode.service $(DESTDIR)$(UNITDIR)/meshnode-directory.service

# run: a working node on the embedded default (in-process directory on loopback,
# Ollama if one answers on 127.0.0.1:11434, else the built-in echo backend).
run: build
	./$(BIN) up --dev

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# bench-node: what the node adds over its backend (POST /v1/task vs the same
# request sent straight to a zero-delay OpenAI-compatible test backend, and
# through a bare httputil.ReverseProxy hop): overhead p50/p99 in µs at
# concurrency 1, 32 and 64, throughput ratios, node-vs-proxy, CPU per request.
bench-node:
	$(GO) test -run '^$$' -bench NodeOverhead -benchtime 4000x ./dirbridge/httpapi/

# bench-report: the benchmark command (bench/): node task path vs direct
# backend and vs a bare reverse-proxy hop (plaintext, TLS), mesh QUIC stream vs HTTP bridge, 50-node advert
# convergence, directory discover/heartbeat with 10,000 nodes, wire codecs;
# ratios against baselines measured in the same process. BENCHFLAGS passes
# flags through, e.g. make bench-report BENCHFLAGS='-duration 10s -json'.
BENCHFLAGS ?=
bench-report:
	$(GO) run ./bench $(BENCHFLAGS)

# fuzz: every fuzz target for FUZZTIME each (go test -fuzz takes one target at a time).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s -parallel 1 $$pkg; \
	  done; \
	done

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# spec-sync: refresh the vendored spec test vectors from a spec checkout.
SPEC ?= ../shared/iicp-spec
spec-sync:
	rm -rf internal/spectest/iicp-spec/fixtures internal/spectest/iicp-spec/schemas internal/spectest/iicp-spec/registry internal/spectest/iicp-spec/spec
	mkdir -p internal/spectest/iicp-spec/spec
	cp -r $(SPEC)/fixtures $(SPEC)/schemas $(SPEC)/registry $(SPEC)/LICENSE internal/spectest/iicp-spec/
	cp $(SPEC)/spec/*.json internal/spectest/iicp-spec/spec/
