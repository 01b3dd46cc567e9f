# SPDX-License-Identifier: LGPL-2.1-or-later
# Convenience front end to meson for a Debian 12 machine.
#
#   make test    install what is missing (as root) or say how, build, run every test suite
#   make demo    build the demos; with a display open the GTK fractal explorer (its "Loop
#                monitor" button opens the monitor), without one run both GTK demos'
#                self-tests under Xvfb and save build/demo-fractal.png, build/demo-monitor.png
#                (the terminal demo is build/demos/loop-tour)
#   make bench   build with Google Benchmark, then run bench/run.sh
#   make clean   remove the build directories
#
# Variables: BUILD (build directory, default build), MESON (default meson),
# MESON_SETUP_ARGS (extra `meson setup` options for a new build directory).

BUILD ?= build
MESON ?= meson
MESON_SETUP_ARGS ?=

# Debian packages each target needs (package names, checked with dpkg-query).
BASE_PKGS  := meson ninja-build pkg-config g++ libglib2.0-dev libgtest-dev
BENCH_PKGS := $(BASE_PKGS) libuv1-dev libbenchmark-dev
DEMO_PKGS  := $(BASE_PKGS) libgtk-4-dev xvfb xauth dbus

.PHONY: all test demo bench build clean deps bench-deps demo-deps

all: build

# $(call need-packages,PKGS): install the missing ones when root, else print the exact
# command and stop. Skipped where dpkg-query does not exist (not Debian: you are on your own).
define need-packages
	@if ! command -v dpkg-query >/dev/null 2>&1; then \
	    echo "note: no dpkg-query; not checking for: $(1)"; \
	else \
	    missing=; \
	    for p in $(1); do \
	        dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q 'ok installed' \
	            || missing="$$missing $$p"; \
	    done; \
	    if [ -n "$$missing" ]; then \
	        if [ "$$(id -u)" -eq 0 ]; then \
	            echo "Installing:$$missing"; \
	            apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing \
	                || exit 1; \
	        else \
	            echo "Missing Debian packages:$$missing. Install them with:"; \
	            echo "  sudo apt-get install -y$$missing"; \
	            exit 1; \
	        fi; \
	    fi; \
	fi
endef

deps:
	$(call need-packages,$(BASE_PKGS))

bench-deps:
	$(call need-packages,$(BENCH_PKGS))

demo-deps:
	$(call need-packages,$(DEMO_PKGS))

# Configure once; later runs let ninja reconfigure by itself when meson files change.
build: deps
	@test -f $(BUILD)/meson-private/coredata.dat || $(MESON) setup $(BUILD) $(MESON_SETUP_ARGS)
	$(MESON) compile -C $(BUILD)

test: build
	$(MESON) test -C $(BUILD) --print-errorlogs

# The demos option is `auto`; a build directory configured before GTK 4 was installed has
# the GTK demos off, so switch them on explicitly (this fails loudly if GTK is still missing).
demo: demo-deps build
	@$(MESON) introspect $(BUILD) --buildoptions | python3 -c 'import json, sys; \
	    opts = {o["name"]: o["value"] for o in json.load(sys.stdin)}; \
	    sys.exit(opts.get("demos") != "enabled")' \
	    || $(MESON) configure $(BUILD) -Ddemos=enabled
	$(MESON) compile -C $(BUILD)
	@if [ -n "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ]; then \
	    echo "Opening the fractal explorer; its \"Loop monitor\" button opens the monitor."; \
	    echo "(Terminal demo: $(BUILD)/demos/loop-tour; monitor alone: $(BUILD)/demos/monitor)"; \
	    $(BUILD)/demos/fractal; \
	else \
	    bash demos/run-headless.sh $(BUILD); \
	fi

# The bench option is `auto`; a build directory configured before Google Benchmark was
# installed has it off, so switch it on explicitly (this fails loudly if it is still missing).
bench: bench-deps build
	$(MESON) configure $(BUILD) -Dbench=enabled
	$(MESON) compile -C $(BUILD)
	bash bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) build-ci-*

# `make soak` (long; not in CI): the TSan stress and slow suites repeated for 10 minutes
# each, then the API-sequence fuzzer for an hour; one summary line at the end.
# SOAK_STRESS_S and SOAK_FUZZ_S (seconds) shorten or lengthen the two parts.
SOAK_PKGS := $(BASE_PKGS) clang libclang-rt-14-dev
.PHONY: soak
soak:
	$(call need-packages,$(SOAK_PKGS))
	bash verify/soak.sh
