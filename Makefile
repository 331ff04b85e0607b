# taskgate — see README.md. Every target works on a fresh clone.
GO       ?= go
BIN      := bin/taskgate
FUZZTIME ?= 5000x

# What `taskgate version` prints: the tag (empty without one, then "devel")
# and the commit, "-dirty" when the tree has changes.
VERSION  ?= $(shell git describe --tags --dirty 2>/dev/null)
COMMIT   ?= $(shell git describe --always --dirty --abbrev=40 --match=NONE 2>/dev/null)
LDFLAGS  := -X github.com/taskgate/taskgate/cli.version=$(VERSION) -X github.com/taskgate/taskgate/cli.commit=$(COMMIT)

.PHONY: run build test unit fuzz-short fuzz bench bench-go lint demo soak

run: ## start the gateway on ./data (key material created there on first start)
	$(GO) run -ldflags "$(LDFLAGS)" . serve

demo: ## a gateway on a temp dir; three workloads run by `taskgate worker run`: success, failure, killed
	./scripts/demo.sh

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

test: lint unit fuzz-short ## every test: vet, unit and integration tests under -race, bounded fuzzing

unit:
	$(GO) test -race -count=1 ./...

fuzz-short:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

fuzz: ## longer fuzzing run
	FUZZTIME=2m ./scripts/fuzz.sh

# End-to-end benchmark of the real binary against a bare Echo baseline (bench/run.sh).
# Parameters: make bench CONNS=64 CONNS_HIGH=1024 DURATION=10s TASKS=10000 STORED=100000 ALG=HS512,EdDSA RUNS=1
# (also WARMUP, MIX, PHASES, BENCH_ARGS; see bench/run.sh). Prints a Markdown report; takes a few minutes.
# PostgreSQL mode: make bench PG=1 [PG_URL=postgres://…/postgres REPLICAS=1,2,3 PGBENCH=pgbench]: Airflow's
# metadata database with 1, 2 and 3 replicas against pgbench running the heartbeat UPDATE (the ceiling).
bench: ## end-to-end load test: req/s, latency, CPU per request and RSS against a bare Echo baseline
	GO="$(GO)" CONNS="$(CONNS)" CONNS_HIGH="$(CONNS_HIGH)" DURATION="$(DURATION)" WARMUP="$(WARMUP)" \
	TASKS="$(TASKS)" STORED="$(STORED)" ALG="$(ALG)" RUNS="$(RUNS)" MIX="$(MIX)" PHASES="$(PHASES)" \
	PG="$(PG)" PG_URL="$(PG_URL)" REPLICAS="$(REPLICAS)" PGBENCH="$(PGBENCH)" \
	BENCH_ARGS="$(BENCH_ARGS)" ./bench/run.sh

bench-go: ## Go benchmarks of token verification, scope decisions, reissue and the store
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

soak: ## long hostile-input, concurrency, crash and fuzz runs (SOAK=1, under 15 minutes)
	./scripts/soak.sh
