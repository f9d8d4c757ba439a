# weft: the two commands a newcomer needs are `make run` and `make test` (see README.md).
#
#   make build   release build in build/: build/weft, build/libweft.so, build/examples/*
#                (no unit tests unless BUILD_TESTS=ON: building needs no cmocka)
#   make run     install what is missing, build, start `weft serve` on embedded defaults
#   make demo    the same, then `weft demo`: weft serve with example services calling each
#                other, traffic and a failing instance; prints the dashboard's URL
#                (docs/demo.md; flags in DEMO_ARGS)
#   make test    install what is missing; the release build (gcc, -Werror) with its unit
#                tests, run there; build with ASan+UBSan (clang, with fuzzers) in
#                build-asan/, run unit tests, fuzz smoke runs, integration tests; then
#                the unit and integration tests again under ThreadSanitizer (build-tsan/).
#                A step that runs no test at all fails (ctest --no-tests=error; pytest
#                exits 5), and so does an integration test whose tool is missing when CI
#                is set (tests/integration/conftest.py, need_tool).
#   make install libweft (headers, libweft.so, libweft.a, weft.pc) into PREFIX (default
#                /usr/local), staged under DESTDIR when set; built in BUILD (Release)
#   make bench   the benchmarks in bench/ (see bench/README.md)
#   make format  clang-format every C file
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc)
PYTHON     ?= /usr/bin/python3
WEFT_ARGS  ?=
DEMO_ARGS  ?=
PREFIX     ?= /usr/local
DESTDIR    ?=
BUILD_TESTS ?= OFF

.PHONY: all build install release run demo test unit integration deps asan tsan tsan-unit \
        tsan-integration \
        bench format clean

all: build

deps:
	@scripts/install-deps

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DWEFT_TESTS=$(BUILD_TESTS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Builds only what it installs (the two libraries): quick, and enough for a service's build.
install:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DWEFT_TESTS=$(BUILD_TESTS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target weft_shared weft_static
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

# The tree `make build` makes (gcc, -Werror: its warnings fail here, not on a user's
# machine), with the unit tests built and run on that optimised code.
release:
	@$(MAKE) --no-print-directory build BUILD_TESTS=ON
	cd $(BUILD) && ctest --output-on-failure --no-tests=error -j $(JOBS) -L unit

run: deps build
	$(BUILD)/weft serve $(WEFT_ARGS)

demo: deps build
	$(BUILD)/weft demo $(DEMO_ARGS)

asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
	  -DWEFT_SANITIZE=ON -DWEFT_FUZZ=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# ThreadSanitizer cannot share a tree with ASan; the unit tests (worker threads, metric
# shards, the MPSC queue, RCU snapshots, servers with several loops) run here too.
tsan:
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
	  -DWEFT_TSAN=ON >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS)

# Sanitizer reports end the process with an error and fail the test that ran it.
export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS ?= halt_on_error=1:second_deadlock_stack=1

unit: asan
	cd $(ASAN_BUILD) && ctest --output-on-failure --no-tests=error -j $(JOBS)

tsan-unit: tsan
	cd $(TSAN_BUILD) && ctest --output-on-failure --no-tests=error -j $(JOBS) -L unit

integration: asan
	WEFT_BUILD=$(abspath $(ASAN_BUILD)) $(PYTHON) -m pytest -q -rs tests/integration

# The real binaries with several worker threads, under ThreadSanitizer: a race report
# ends the process and fails the test (conftest.py looks for every sanitizer's mark).
tsan-integration: tsan
	WEFT_BUILD=$(abspath $(TSAN_BUILD)) $(PYTHON) -m pytest -q -rs tests/integration

test: deps
	@$(MAKE) --no-print-directory release
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory tsan-unit
	@$(MAKE) --no-print-directory tsan-integration

bench: deps build
	@scripts/install-deps --bench
	bench/http
	bench/otlp
	bench/idle

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
