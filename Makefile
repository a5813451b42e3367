# tokenhost: build, test, lint, benchmark.
#
#   make run          start the server on the embedded store
#   make test         everything the test suite needs (PostgreSQL too), then the tests
#   make guest        rebuild the JS rule runtime (guest-sdk) from source
#   make rules        compile every rules/*.js to rules/*.wasm offline
#   make lint         rustfmt + clippy (host and guest) + tsc on rules/
#   make console      rebuild the console's bundle (host/console/dist) from its source
#   make console-check  the committed bundle matches its source, and tsc passes (CI)
#   make bench        the token endpoint under load (wrk); bench-rules: one rule's cost
#   make bench-cluster  several nodes on one PostgreSQL
#   make bench-catalog  a management write and a token request, empty vs 100k clients
#   make bench-crypto   ring against aws-lc-rs on the server's crypto operations
#   make bench-sign     one access token's signature, per algorithm

CARGO        ?= cargo
ROOT         := $(CURDIR)
GUEST_WASM   := guest-sdk/rule-runtime.wasm
WASI_SDK_DIR := $(ROOT)/target/wasi-sdk
CARGO_HOME_  := $(or $(CARGO_HOME),$(HOME)/.cargo)
# Paths are remapped so that the runtime is byte-identical wherever it is built.
GUEST_ENV    := WASI_SDK=$(WASI_SDK_DIR) \
                RUSTFLAGS="--remap-path-prefix=$(ROOT)=/src --remap-path-prefix=$(CARGO_HOME_)/registry/src=/cargo" \
                CARGO_TARGET_DIR=$(ROOT)/target/guest
TOKENHOST    := target/release/tokenhost
RUST_FIXTURE := tests/fixtures/rust-rule

.PHONY: run build test test-deps pg-url guest guest-check guest-toolchain rules fixtures lint console console-check bench bench-quick bench-rules bench-cluster bench-catalog bench-crypto bench-sign clean

run: build
	$(TOKENHOST) serve

build:
	$(CARGO) build --release -p host

# Test fixtures built from source: a rule written in Rust against the WIT world.
fixtures:
	rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
	cd $(RUST_FIXTURE) && CARGO_TARGET_DIR=$(ROOT)/target/fixtures $(CARGO) build --release --target wasm32-wasip2 --quiet
	cp target/fixtures/wasm32-wasip2/release/rust_rule.wasm tests/fixtures/rust-rule.wasm

# PyJWT verifies tokens in the end-to-end tests, as a non-Rust API would; authlib (with
# requests) and joserfc are the stock client of private_key_jwt and DPoP (tests/client_auth.py);
# openapi-spec-validator checks the served OpenAPI document, openapi-python-client generates a
# client from it, jsonschema checks answers against it and Schemathesis fuzzes the API with it
# (tests/it/openapi.rs). Playwright drives Debian's Chromium through the console
# (tests/it/console.rs): its wheel brings the driver; never `playwright install`.
test-deps:
	@python3 -c 'import jwt, cryptography' 2>/dev/null || python3 -m pip install --quiet 'pyjwt[crypto]>=2.8'
	@python3 -c 'import authlib.oauth2.rfc7523, joserfc, requests' 2>/dev/null || \
	  python3 -m pip install --quiet 'authlib>=1.6' 'joserfc>=1.0' 'requests>=2.28'
	@python3 -c 'import openapi_spec_validator' 2>/dev/null || \
	  python3 -m pip install --quiet 'openapi-spec-validator>=0.7'
	@python3 -c 'import schemathesis, openapi_python_client, jsonschema' 2>/dev/null || \
	  python3 -m pip install --quiet 'schemathesis>=4.32,<5' 'openapi-python-client>=0.29' 'jsonschema>=4.23'
	@python3 -c 'import playwright.sync_api' 2>/dev/null || python3 -m pip install --quiet 'playwright>=1.45'
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# The console (host/console): esbuild and CodeMirror 6 pinned in package-lock.json. The
# bundle in dist/ is committed, so `make run` needs no node; CI checks it matches.
console:
	cd host/console && npm ci --no-audit --no-fund --silent && npm run --silent build

console-check:
	cd host/console && npm ci --no-audit --no-fund --silent && npm run --silent check && npm run --silent typecheck

# The store tests run on SQLite and on PostgreSQL: tests/postgres.sh installs and starts
# a server when TOKENHOST_TEST_DATABASE_URL names none, and prints the URL to test on.
test: fixtures test-deps
	$(CARGO) build --release -p host
	url=$$(tests/postgres.sh) && TOKENHOST_TEST_DATABASE_URL="$$url" $(CARGO) test --release --workspace

# The URL of the test database (made fresh), for running single tests by hand:
#   TOKENHOST_TEST_DATABASE_URL=$$(make -s pg-url) cargo test --release -p host --lib store::
pg-url:
	@tests/postgres.sh

# The Debian toolchain of shared/TOOLCHAIN.md, arranged like a wasi-sdk for rquickjs-sys.
guest-toolchain:
	@command -v clang-19 >/dev/null && test -d /usr/include/wasm32-wasi || \
	  (apt-get update -qq && apt-get install -y -qq clang-19 llvm-19 libclang-19-dev wasi-libc >/dev/null)
	rustup target add wasm32-wasip1 >/dev/null 2>&1 || rustup target add wasm32-wasip1
	mkdir -p $(WASI_SDK_DIR)/bin $(WASI_SDK_DIR)/share/wasi-sysroot
	ln -sf /usr/bin/clang-19 $(WASI_SDK_DIR)/bin/clang
	ln -sf /usr/bin/llvm-ar-19 $(WASI_SDK_DIR)/bin/ar
	ln -sfn /usr/include/wasm32-wasi $(WASI_SDK_DIR)/share/wasi-sysroot/include

target/guest/wasm32-wasip1/release/guest_sdk.wasm: guest-toolchain
	cd guest-sdk && $(GUEST_ENV) $(CARGO) build --release --locked --target wasm32-wasip1

guest: target/guest/wasm32-wasip1/release/guest_sdk.wasm
	cp $< $(GUEST_WASM)

# CI: the committed runtime must be exactly what the source builds.
guest-check: target/guest/wasm32-wasip1/release/guest_sdk.wasm
	cmp $< $(GUEST_WASM) || (echo "guest-sdk/rule-runtime.wasm differs from a fresh build: run 'make guest' and commit it" >&2; exit 1)

rules: build
	@for js in rules/*.js; do \
	  echo "compile $$js"; \
	  $(TOKENHOST) compile $$js -o $${js%.js}.wasm || exit 1; \
	done

lint: guest-toolchain
	$(CARGO) fmt --all --check
	cd guest-sdk && $(CARGO) fmt --check
	cd $(RUST_FIXTURE) && $(CARGO) fmt --check
	cd bench/crypto && $(CARGO) fmt --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	cd guest-sdk && $(GUEST_ENV) $(CARGO) clippy --release --locked --target wasm32-wasip1 -- -D warnings
	npx --yes --package typescript@5 tsc -p rules/jsconfig.json

bench: build
	$(CARGO) build --release -p host --examples
	python3 bench/run.py --duration 10

bench-quick: build
	$(CARGO) build --release -p host --examples
	python3 bench/run.py --quick

# Several nodes on one PostgreSQL (BENCHMARKS.md): tokens/s with 1-3 nodes, propagation.
bench-cluster: build
	python3 bench/cluster.py

bench-rules:
	$(CARGO) run --release -p host --example bench_rules

# The signature of one access token: raw, through KeySet::sign, and parse + sign as before.
bench-sign:
	$(CARGO) run --release -p host --example bench_sign

bench-catalog: build
	$(CARGO) build --release -p host --example bench_catalog
	python3 bench/catalog.py

# ring against aws-lc-rs (BENCHMARKS.md): its own crate and lock file, so that the server's
# tree never holds both.
bench-crypto:
	cd bench/crypto && CARGO_TARGET_DIR=$(ROOT)/target/bench-crypto $(CARGO) run --release --locked

clean:
	$(CARGO) clean
	rm -rf target
