# sipdrain - the short verbs. Everything real lives in CMake and tests/scripts.
#
#   make              install missing dependencies, build into build/bin/
#   make test         the whole suite: unit + integration (private PostgreSQL and Kafka)
#   make unit         unit tests only: no servers, seconds
#   make asan         the whole suite built with ASan+UBSan (build-asan/), but the compose
#                     test (it runs the image, not this build)
#   make format-check clang-format check, as CI runs it
#   make bench        bench/bus.sh, bench/agent_state.sh, bench/edge.sh, bench/drain.sh
#   make demo         two sites behind Kamailio, agents, calls, the drain of site2, a report
#   make compose-test docker-compose.yml under a real container engine (tests/compose:
#                     engine.sh prepare, then run.sh; the first run builds images, minutes)
.PHONY: all build deps configure test unit integration asan format format-check bench demo \
	compose-test clean

BUILD ?= build
ASAN_BUILD ?= build-asan
# CI sets CI=true: warnings are errors there (and here too by default).
CMAKE_FLAGS ?= -DSIPDRAIN_WERROR=ON
CTEST = ctest --output-on-failure --no-tests=error
SOURCES = $(shell git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null)

all: build

deps:
	@tools/deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD)

test: build
	@$(CTEST) --test-dir $(BUILD) -j1 ; rc=$$?; tools/test-summary.sh $(BUILD); exit $$rc

unit: build
	@$(CTEST) --test-dir $(BUILD) -L unit -j2 ; rc=$$?; tools/test-summary.sh $(BUILD); exit $$rc

integration: build
	@$(CTEST) --test-dir $(BUILD) -L integration -j1 ; rc=$$?; tools/test-summary.sh $(BUILD); exit $$rc

asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja $(CMAKE_FLAGS) -DSIPDRAIN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(ASAN_BUILD)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(CTEST) --test-dir $(ASAN_BUILD) -LE compose -j1 ; rc=$$?; tools/test-summary.sh $(ASAN_BUILD); exit $$rc

format:
	clang-format -i $(SOURCES)

format-check:
	clang-format --dry-run -Werror $(SOURCES)

bench: build
	bench/bus.sh
	bench/agent_state.sh
	bench/edge.sh
	bench/drain.sh

demo: build
	tools/demo.sh

# Prepares the engine (Docker Engine, else Podman from Debian; prints what it
# changed on the host), then runs the scenario. Needs the Kafka jars of
# `make deps` for the Kafka stand-in image, nothing built here.
compose-test: deps
	@tests/compose/engine.sh prepare >/dev/null
	tests/compose/run.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
