# unwindd: `make run` builds everything and runs the main job; `make test` runs the tests.
# Both install the Debian packages they need (idempotently) on a fresh machine.

GO      ?= go
BIN     := bin
UNWINDD := $(BIN)/unwindd
# The perf plugin, beside unwindd, where `unwindd replay` looks for it.
PERFPLUGIN := $(BIN)/unwindd-plugin-perf
DEMO    := $(BIN)/demo
# Debian packages the build and the tests use: gcc builds the C test targets
# and the demo, gdb and perf are oracles (backtraces; perf.data and perf
# script), libc6-dbg gives libc's frames their names (as gdb finds them, by
# build-id), strace is the ptrace source's oracle (syscall counts) and
# baseline (make bench), gcc-multilib builds its 32-bit target, chromium
# (headless) loads the perf plugin's flame.svg in a real browser.
DEBS    := gcc gdb libc6-dbg linux-perf strace gcc-multilib chromium
# On CI (CI=true) these must not be skipped for lack of them: a test that
# would skip fails instead (internal/testutil.Need).
comma   := ,
export UNWINDD_TEST_REQUIRE ?= $(if $(filter true,$(CI)),gcc$(comma)gdb$(comma)ptrace$(comma)libc$(comma)libc6-dbg$(comma)objcopy$(comma)setuid$(comma)perf$(comma)strace$(comma)multilib$(comma)chromium)
FUZZTIME ?= 30s

# Code generation (make generate): protoc from Debian, the Go plugins pinned.
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
TOOLS   := $(CURDIR)/$(BIN)/tools

.PHONY: all build install run test vet deps fuzz bench bench-replay bench-replay-nofp bench-live clean generate

all: build

# Install what is missing, and only that; root is needed only when something is.
deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

build:
	$(GO) build -o $(UNWINDD) ./cmd/unwindd
ifneq ($(wildcard plugins/perf),)
	$(GO) build -o $(PERFPLUGIN) ./plugins/perf
endif
ifneq ($(wildcard plugins/ftrace),)
	$(GO) build -o $(BIN)/unwindd-plugin-ftrace ./plugins/ftrace
endif
ifneq ($(wildcard plugins/bpf/*.go),)
	$(GO) build -o $(BIN)/unwindd-plugin-bpf ./plugins/bpf
endif

# make install PREFIX=/usr/local: unwindd in PREFIX/bin and the built-in
# plugins beside it, where it looks for them (a deployment's bare plugin
# name is the binary unwindd-plugin-<name> in unwindd's own directory).
PREFIX ?= /usr/local
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(UNWINDD) $(DESTDIR)$(PREFIX)/bin/unwindd
	for p in $(BIN)/unwindd-plugin-*; do install -m 0755 $$p $(DESTDIR)$(PREFIX)/bin/; done

$(DEMO): testdata/demo/demo.c | deps
	@mkdir -p $(BIN)
	gcc -O0 -g -fno-omit-frame-pointer -pthread -o $@ $<

# The demo as distributions build programs: -O2, no frame pointers (only
# CFI walks it), for make bench-replay-nofp.
$(BIN)/demo-nofp: testdata/demo/demo.c | deps
	@mkdir -p $(BIN)
	gcc -O2 -fomit-frame-pointer -pthread -o $@ $<

# The main job: trace the demo (four threads, each deep in a call chain, and
# a few syscalls) live for a second with the embedded default deployment:
# cpu-clock samples and every syscall, each kernel entry's user stack
# unwound once and delivered to the perf and ftrace plugins, which write
# their files to bin/out. Before that, `unwindd stack` stops the demo once
# and prints every thread's stack.
run: deps build $(DEMO)
	@echo "== unwindd stack --after 300ms -- $(DEMO)"
	$(UNWINDD) stack --after 300ms -- $(DEMO)
	@echo "== unwindd run --out $(BIN)/out -- $(DEMO) 1000"
	$(UNWINDD) run --log-level warn --out $(BIN)/out -- $(DEMO) 1000
	@ls -l $(BIN)/out
	@echo "== look at them:"
	@echo "   go tool pprof -top $(BIN)/out/profile.pb.gz      # the profile, by function"
	@echo "   $(BIN)/out/flame.svg                             # the flame graph: open it in a browser (hover, click to zoom, Search)"
	@echo "   less $(BIN)/out/trace.txt                        # every syscall with its user stack, ftrace's layout"
	@echo "   less $(BIN)/out/perf.script.txt $(BIN)/out/stacks.folded"

vet:
	$(GO) vet ./...

# go vet, the example plugin (its own module) built, every test under the
# race detector (fuzz seeds included; the
# deferred engine's model test runs shortened there), then the model test at
# full length (1e6 kernel entries) without -race.
test: deps vet
	cd examples/stackcount && $(GO) build -o /dev/null ./... && $(GO) vet ./...
	$(GO) test -race -timeout 15m ./...
	$(GO) test -count=1 -run '^TestModel$$' -timeout 10m ./host/deferred/

# Each fuzz target for FUZZTIME; crashers land in the package's testdata/fuzz/.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzUnwind$$' -fuzztime $(FUZZTIME) ./arch/x86_64/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./arch/x86_64/sframe/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./arch/x86_64/cfi/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./host/config/
	$(GO) test -run '^$$' -fuzz '^FuzzBatch$$' -fuzztime $(FUZZTIME) ./sdk/
	$(GO) test -run '^$$' -fuzz '^FuzzDecide$$' -fuzztime $(FUZZTIME) ./sdk/
	$(GO) test -run '^$$' -fuzz '^FuzzParseFormat$$' -fuzztime $(FUZZTIME) ./sdk/tracefs/
	$(GO) test -run '^$$' -fuzz '^FuzzPerfData$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./host/perfdata/
	$(GO) test -run '^$$' -fuzz '^FuzzDecoder$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./host/perfdata/
	$(GO) test -run '^$$' -fuzz '^FuzzParseConfig$$' -fuzztime $(FUZZTIME) ./plugins/ftrace/
	$(GO) test -run '^$$' -fuzz '^FuzzFlame$$' -fuzztime $(FUZZTIME) ./plugins/perf/
	$(GO) test -run '^$$' -fuzz '^FuzzConfig$$' -fuzztime $(FUZZTIME) ./plugins/bpf/

# The benchmarks beside their baselines, as the README's performance table quotes them.
bench:
	$(GO) test -run '^$$' -bench 'AtomicOr|Request|Entry' -benchmem -count 5 ./host/deferred/
	$(GO) test -run '^$$' -bench 'Unwind' -benchmem -count 5 ./arch/x86_64/
	$(GO) test -run '^$$' -bench 'Lookup' -benchmem -count 5 ./arch/x86_64/sframe/
	$(GO) test -run '^$$' -bench 'Build|Lookup' -benchmem -count 5 ./arch/x86_64/cfi/
	$(GO) test -run '^$$' -bench 'Walk' -benchmem -count 5 ./host/unwindinfo/
	$(GO) test -run '^$$' -bench 'Deliver|RawGRPC|Startup|Latency|Decide' -benchmem -count 3 ./host/pluginhost/
	$(GO) test -run '^$$' -bench 'Match|Events' -benchmem -count 3 ./plugins/bpf/
	$(GO) test -run '^$$' -bench 'FlameWrite|FoldedWrite' -benchmem -count 3 ./plugins/perf/

# `unwindd replay` beside `perf script` on the same recordings of the demo
# (~100 and >= 50,000 samples, 8 KiB stacks): steady-state samples/s of both,
# start-up, peak RSS. KEEP=1 keeps the files (/tmp/unwindd-bench-replay).
bench-replay: deps
	scripts/bench-replay.sh

# The same with the demo built -O2 without frame pointers: every frame is
# walked with CFI, libc's included, whole stacks on both sides.
bench-replay-nofp: deps
	DEMO=$(BIN)/demo-nofp scripts/bench-replay.sh

# `unwindd run` live beside its anchors, in the same run: the perf source's
# wall-time overhead on a CPU-bound program beside perf record's (999 Hz,
# DWARF stacks), host CPU per sample; the ptrace source's cost per syscall
# beside strace and strace -k. KEEP=1 keeps the files (/tmp/unwindd-bench-live).
bench-live: deps
	scripts/bench-live.sh

# Regenerates sdk/proto from plugin.proto; the output is committed.
generate:
	@dpkg -s protobuf-compiler >/dev/null 2>&1 || $(MAKE) deps DEBS=protobuf-compiler
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(TOOLS):$$PATH protoc --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative sdk/proto/plugin.proto

clean:
	rm -rf $(BIN)
