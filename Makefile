# shoal — the two commands a newcomer needs are `make up` and `make test`.
# Both install what is missing (as root, with apt-get) and build what they use.

SHELL      := /bin/bash
GO         ?= go
BIN        := bin/shoal
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -X main.version=$(VERSION)
DATA_DIR   ?= /var/lib/shoal
LISTEN     ?= 127.0.0.1:7070
# A private containerd for `make up` and `make test` when no system one runs.
CTD_DIR    ?= /run/shoal-containerd
TEST_CTD   ?= /run/shoal-test-ctd
GOTEST_FLAGS ?= -count=1 -timeout 30m

.PHONY: all build images deps up down test test-unit bench fuzz clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/shoal

# The hello example as two one-binary OCI image tarballs, built by shoal
# itself: no docker, no registry.
images: build
	@mkdir -p build/hello-v1 build/hello-v2 build/images
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=v1" -o build/hello-v1/hello ./examples/hello
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=v2" -o build/hello-v2/hello ./examples/hello
	$(BIN) image build --binary build/hello-v1/hello --ref shoal.local/hello:v1 --entrypoint /hello --expose 8080/tcp -o build/images/hello-v1.tar
	$(BIN) image build --binary build/hello-v2/hello --ref shoal.local/hello:v2 --entrypoint /hello --expose 8080/tcp -o build/images/hello-v2.tar

deps:
	@scripts/deps.sh

# An all-in-one cluster running the hello example.
up: deps images
	@DATA_DIR=$(DATA_DIR) LISTEN=$(LISTEN) CTD_DIR=$(CTD_DIR) scripts/up.sh

down:
	@DATA_DIR=$(DATA_DIR) CTD_DIR=$(CTD_DIR) scripts/down.sh

# The whole suite: gofmt and vet, unit tests, controller tests on a real
# embedded etcd, runtime tests and end-to-end tests on a real containerd,
# all with the race detector; then a check that the host is as it was.
test: deps build
	@GO=$(GO) TEST_CTD=$(TEST_CTD) GOTEST_FLAGS="$(GOTEST_FLAGS)" scripts/test.sh

# Unit tests only: no root, no containerd.
test-unit:
	$(GO) test -short -count=1 ./...

bench: deps build
	@scripts/bench.sh

# Every fuzz target, FUZZTIME each (default 20s): scripts/fuzz.sh.
fuzz:
	@GO=$(GO) FUZZTIME=$(or $(FUZZTIME),20s) scripts/fuzz.sh

clean:
	rm -rf bin build
