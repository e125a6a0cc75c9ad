# petrel — build, test and benchmark targets. `make test` is what CI runs.
GO        ?= go
BIN       := bin/petrel
PKGS      := ./...
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2

.PHONY: all build test unit e2e bench proto lint deps demo clean kube-apiserver fuzz

all: build

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/petrel-net/petrel/internal/version.Version=$(VERSION)

# Static (pure Go), as deploy/Dockerfile builds it: the Kubernetes lab puts
# this binary in its petrel image.
build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/petrel

# deps installs the Debian packages the e2e tests and the demo need (root).
deps:
	./hack/install-deps.sh

# kube-apiserver builds the API server the kubernetes datastore tests need,
# once, into $$PETREL_CACHE (default /var/cache/petrel); warm runs are instant.
kube-apiserver:
	./hack/kube-apiserver.sh

# k8s-binaries builds what the Kubernetes lab runs besides kube-apiserver
# (kubelet, kube-controller-manager, kube-scheduler), once, into the same
# cache; a cold build takes long (see README), warm runs are instant.
k8s-binaries: kube-apiserver
	./hack/k8s-binaries.sh kubelet kube-controller-manager kube-scheduler

# test = lint + unit tests + end-to-end tests (root; they skip without it)
# + a short run of every fuzz target. The Kubernetes binaries are one-time
# builds into the cache (cold: ~17 min more), so the Kubernetes lab test
# runs in CI too.
test: deps lint build kube-apiserver k8s-binaries
	$(GO) test -count=1 -timeout 30m $(PKGS)
	$(MAKE) fuzz

# fuzz runs each decoder's fuzz target for FUZZTIME (package:target); a
# failing input lands in that package's testdata/fuzz and is replayed by
# every later `go test`. A count, not a duration: with -fuzztime 3s a
# worker still busy when the time ran out failed the run now and then
# ("context deadline exceeded") with nothing found.
FUZZTIME     ?= 10000x
FUZZ_TARGETS := ./config:FuzzParse ./datastore:FuzzDecode ./datastore:FuzzUnmarshal \
	./datastore/kubernetes:FuzzNodeAnnotations ./selector:FuzzParse ./cni:FuzzLoadConf
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t%%:*} $${t##*:} ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t##*:}$$" -fuzztime $(FUZZTIME) $${t%%:*}; \
	done

unit:
	$(GO) test -count=1 -short $(PKGS)

e2e: deps build
	$(GO) test -count=1 -timeout 30m -v ./e2e/...

bench: deps build
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./e2e/...

proto:
	$(GO) install $(PROTOC_GEN_GO)
	$(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH="$(GOBIN_DIR):$$PATH" protoc -I proto \
		--go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		proto/petrel.proto

lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

demo: deps build
	./hack/demo.sh

# lab brings up deploy/lab/mesh3.clab.yml (3 petrel nodes, etcd, 6 pods in
# network namespaces; root) and shows its status; lab-down removes it.
.PHONY: lab lab-down
lab: deps build
	./bin/petrel lab up deploy/lab/mesh3.clab.yml && ./bin/petrel lab status

lab-down: build
	./bin/petrel lab down deploy/lab/mesh3.clab.yml

# k8s-lab brings up deploy/lab/k8s3.clab.yml: a Kubernetes control plane and
# three containerd + kubelet nodes in network namespaces, petrel as the
# deploy/k8s DaemonSet, 6 test pods (root; docs/lab.md); k8s-lab-down
# removes it.
.PHONY: k8s-binaries k8s-lab k8s-lab-down
k8s-lab: deps build k8s-binaries
	./bin/petrel lab up deploy/lab/k8s3.clab.yml && ./bin/petrel lab status k8s3

k8s-lab-down: build
	./bin/petrel lab down k8s3

clean:
	rm -rf bin
