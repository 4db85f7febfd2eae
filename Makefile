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

# Packages in $(BIN_DIR)/ from the release binaries (packaging/build.sh: dpkg-deb, rpmbuild).
pkg-deb: build
	OUT=$(BIN_DIR) bash packaging/build.sh deb

pkg-rpm: build
	OUT=$(BIN_DIR) bash packaging/build.sh rpm

# No GPU needed: fake GPU (umockdev fixture), amd-ctk, and real runc containers with the hook.
# As root on Debian/Ubuntu; installs what it needs; leaves the host as it was.
demo: deps build
	bash tests/demo.sh

# Speed and memory figures against their goals, one table, measured twice (tests/bench/bench.py;
# root, a few minutes). Exits non-zero when a goal is missed. BENCH_ARGS="--sets 1 --pairs 10".
bench: build
	python3 tests/bench/bench.py $(BENCH_ARGS)

clean:
	$(CARGO) clean
	rm -rf $(BIN_DIR)
