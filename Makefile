# taskgate — see README.md. Every target works on a fresh clone.
GO       ?= go
BIN      := bin/taskgate
FUZZTIME ?= 3s

.PHONY: run build test unit fuzz-short fuzz bench lint

run: ## start the gateway on ./data (key material created there on first start)
	$(GO) run . serve

build:
	$(GO) build -o $(BIN) .

test: lint unit fuzz-short ## every test: vet, unit and integration tests under -race, bounded fuzzing

unit:
	$(GO) test -race -count=1 ./...

fuzz-short:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

fuzz: ## longer fuzzing run
	FUZZTIME=2m ./scripts/fuzz.sh

bench: ## Go benchmarks of token verification, scope decisions, reissue and the store
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
