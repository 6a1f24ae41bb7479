# The commands the README gives a newcomer. Each installs what it needs first
# (scripts/install-deps.sh is idempotent), then builds with CMake into build/ (build-asan/ for
# the sanitizer build). JOBS defaults to the number of cores.

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
CTEST_ARGS ?=
CMAKE_ARGS ?=

FORMAT_DIRS := server sdk tests
FORMAT_FILES = $(shell git ls-files -- $(addsuffix /*.c,$(FORMAT_DIRS)) $(addsuffix /*.h,$(FORMAT_DIRS)) $(addsuffix /*.cc,$(FORMAT_DIRS)) 2>/dev/null)

.PHONY: all deps build run test asan fuzz format format-check clean help docker-image docker-run dist

all: build

help:
	@echo "make run           install dependencies, build, run the main job"
	@echo "make test          install dependencies, build, run the whole test suite (ctest)"
	@echo "make asan          the suite under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make fuzz          every libFuzzer target for FUZZ_SECONDS (default 60) each, with clang"
	@echo "make dist          the install tree as build/mir-c-dist.tar.gz (for deploy/ansible)"
	@echo "make docker-image  the Docker image (DOCKER_IMAGE, default mir-c:latest)"
	@echo "make docker-run    the image, a 4-replica compose cluster, the demo against it, stop"
	@echo "make format        clang-format every C/C++ source in place"
	@echo "make format-check  fail if any source is not clang-formatted"

deps:
	@./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

# The main job: a local 4-replica cluster (deploy/local/cluster.sh, in a fresh folder under the
# build directory) ordering transactions that mir-demo submits through libmirclient for a few
# seconds while another client subscribes; prints throughput and latency, then stops the cluster
# whatever happened.
DEMO_DIR = $(CURDIR)/$(BUILD)/demo-cluster
run: build
	@export MIR_CLUSTER_DIR="$(DEMO_DIR)" MIR_BIN_DIR="$(CURDIR)/$(BUILD)/bin"; \
	./deploy/local/cluster.sh clean >/dev/null; \
	./deploy/local/cluster.sh start 4 || { ./deploy/local/cluster.sh stop; exit 1; }; \
	./$(BUILD)/bin/mir-demo --replicas "$$(paste -sd, "$(DEMO_DIR)/client-addresses")" --seconds 5; \
	rc=$$?; ./deploy/local/cluster.sh stop; exit $$rc

# The install tree as a tarball (what deploy/ansible/prepare.yml unpacks on each host): the
# programs, libmirclient with its header and pkg-config file, and the list of Debian packages of
# the libraries they load.
dist: build
	rm -rf $(BUILD)/dist-root
	cmake --install $(BUILD) --strip --prefix $(CURDIR)/$(BUILD)/dist-root
	mkdir -p $(BUILD)/dist-root/share/mir
	./scripts/runtime-packages.sh $(BUILD)/dist-root/bin/* $(BUILD)/dist-root/lib/libmirclient.so \
	  > $(BUILD)/dist-root/share/mir/runtime-packages
	tar -C $(BUILD)/dist-root -czf $(BUILD)/mir-c-dist.tar.gz .
	@echo "dist: $(BUILD)/mir-c-dist.tar.gz"

# The image of the Dockerfile, on a local debian:bookworm-slim where none can be pulled
# (scripts/docker-base-image.sh is a no-op when the tag exists). DOCKER_BUILD_ARGS passes options
# to docker build (--network host where a build container cannot reach the apt source).
DOCKER_IMAGE ?= mir-c:latest
DOCKER_BUILD_ARGS ?=
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
docker-image:
	./scripts/docker-base-image.sh
	docker build $(DOCKER_BUILD_ARGS) -t $(DOCKER_IMAGE) .

# `make run` in Docker: the compose cluster of deploy/docker/compose.yml (project mir-demo, fresh
# keys and data), the demo against it once every replica is healthy, then down with its volumes
# whatever happened.
docker-run: docker-image
	@c="$(COMPOSE) -f deploy/docker/compose.yml -p mir-demo"; \
	export MIR_IMAGE="$(DOCKER_IMAGE)"; \
	$$c down -v --remove-orphans >/dev/null 2>&1; \
	$$c --profile demo run --rm demo; rc=$$?; \
	$$c ps; $$c --profile demo down -v --remove-orphans; exit $$rc

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMIR_ASAN=ON -DMIR_UBSAN=ON $(CMAKE_ARGS)
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# Every libFuzzer target (mir_add_fuzzer, built in build-fuzz/tests/; listed in build-fuzz/fuzzers/,
# one file per target naming its seed folder) runs FUZZ_SECONDS on a corpus of its own under
# build-fuzz/corpus/ that grows from run to run; a crash or leak leaves its input in
# build-fuzz/artifacts/ and fails the target.
FUZZ_SECONDS ?= 60
FUZZ_BUILD ?= build-fuzz
fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DMIR_FUZZ=ON -DMIR_ASAN=ON -DMIR_UBSAN=ON $(CMAKE_ARGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $$(ls $(FUZZ_BUILD)/fuzzers)
	@cd $(FUZZ_BUILD) && mkdir -p artifacts && failed=0; \
	for name in $$(ls fuzzers); do \
	  mkdir -p corpus/$$name; \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ./tests/$$name -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=artifacts/$$name- corpus/$$name $$(cat fuzzers/$$name) \
	    >artifacts/$$name.log 2>&1; rc=$$?; \
	  execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' artifacts/$$name.log); \
	  speed=$$(sed -n 's/^stat::average_exec_per_sec: *//p' artifacts/$$name.log); \
	  if [ $$rc -eq 0 ]; then \
	    echo "fuzz: $$name ok: $${execs:-?} runs, $${speed:-?}/s, corpus $$(ls corpus/$$name | wc -l)"; \
	  else \
	    echo "fuzz: $$name FAILED (exit $$rc): $(FUZZ_BUILD)/artifacts/$$name.log"; failed=1; \
	  fi; \
	done; exit $$failed

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	@bad=0; for f in $(FORMAT_FILES); do \
	  clang-format --dry-run -Werror "$$f" >/dev/null 2>&1 || { echo "not formatted: $$f"; bad=1; }; \
	done; \
	if [ $$bad -ne 0 ]; then echo "run 'make format'"; exit 1; fi; echo "format-check: ok"

clean:
	rm -rf $(BUILD) build-asan
