# AMD container toolkit. `make test` is what CI runs (.ci/run).
CARGO ?= cargo
BIN_DIR := bin

.PHONY: all build deps lint test unit e2e bench demo pkg-deb pkg-rpm clean

all: build

build:
	$(CARGO) build --release --workspace

deps:
	bash tests/install-deps.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Unit tests, golden outputs under umockdev, and the end-to-end tests on real
# runc, podman and dockerd (they need root; under CI=true they fail rather than skip).
test: deps build lint
	$(CARGO) test --workspace --no-fail-fast

bench: build
	bash tests/bench/cdi-generate.sh
	bash tests/bench/hook-overhead.sh

clean:
	$(CARGO) clean
	rm -rf $(BIN_DIR)
