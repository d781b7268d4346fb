# Vigil — see README.md. Every target works on a fresh clone with Go installed.
GO        ?= go
BIN       := bin/vigil
PKGS      := ./...
FUZZTIME  ?= 20s

.PHONY: build test check bench fuzz demo clean

build:
	$(GO) build -o $(BIN) ./cmd/vigil

demo: build
	./$(BIN) demo

test:
	$(GO) test -count=1 -timeout 30m $(PKGS)

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) mod tidy -diff
	$(GO) tool staticcheck $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# fuzz runs every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
