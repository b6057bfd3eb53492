# malloc-doctor: build, test, demo and benchmarks.
#
# Everything generated goes under build/ (objects, the tool, fixtures); the source tree stays clean.
# The two commands a new user runs are `make demo` and `make test`; both install missing Debian
# packages first (`make deps`) and then re-enter make, so that pkg-config answers are read after
# the packages exist.

VERSION := 0.1.0
B := build
CC := gcc
MUSL_CC := musl-gcc

# Debian packages: the tool's libraries, the test and benchmark tools, and the allocators we compare.
DEB_PKGS := gcc make pkg-config libelf-dev binutils-dev libcjson-dev libcmocka-dev bats strace \
	musl-tools musl-dev libmimalloc-dev libmimalloc2.0 libjemalloc-dev libjemalloc2 \
	libgoogle-perftools-dev libgoogle-perftools4 hyperfine clang python3 python3-jsonschema git binutils libc6-dbg

# Recursive (=) so that pkg-config runs when a recipe needs it, never while deps are missing.
PKG_CFLAGS = $(shell pkg-config --cflags libelf libcjson)
PKG_LIBS = $(shell pkg-config --libs libelf libcjson) -lbfd -lm
CMOCKA_LIBS = $(shell pkg-config --libs cmocka)

# Messages for people are cut to fixed buffers on purpose, so truncation is not an error.
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
	-Wno-format-truncation
TOOL_CFLAGS = -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -I. $(PKG_CFLAGS) -DMD_VERSION='"$(VERSION)"'
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

# MD_EXCLUDE (patterns) leaves sources out of a build, e.g. a module that is mid-edit.
# The engine: lib/, rules/, and alloc/hook_x86.c, which the static probe shares (the tool plans
# hooks with it before a run).
ENGINE_SRC := $(wildcard lib/*.c rules/*.c) alloc/hook_x86.c
TOOL_SRC := $(filter-out $(MD_EXCLUDE),$(ENGINE_SRC) $(filter-out cmd/main.c,$(wildcard cmd/*.c)))
TOOL_OBJ := $(TOOL_SRC:%.c=$(B)/obj/%.o)
TOOL_SAN_OBJ := $(TOOL_SRC:%.c=$(B)/san/%.o)
TOOL := $(B)/malloc-doctor
TOOL_SAN := $(B)/malloc-doctor-san

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/unit/%)

.PHONY: all deps demo test check bench clean format tool tool-san unit fixtures

all: tool alloc probe

tool: $(TOOL)
tool-san: $(TOOL_SAN)

deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "deps: missing:$$missing; run: sudo apt-get install$$missing" >&2; exit 1; fi; \
	echo "deps: installing$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing
	@# perf's syscall tracepoints need tracefs; systemd mounts it, a bare container may not have
	@if [ "$$(id -u)" = 0 ] && [ ! -d /sys/kernel/tracing/events ] && [ -d /sys/kernel/tracing ]; then \
		echo "deps: mounting tracefs on /sys/kernel/tracing"; \
		mount -t tracefs nodev /sys/kernel/tracing || echo "deps: tracefs could not be mounted; perf tests will fail" >&2; \
	fi

demo: deps
	@$(MAKE) --no-print-directory all fixtures
	@sh tests/demo.sh

test: deps
	@$(MAKE) --no-print-directory check

check: all tool-san unit fixtures perf-fixtures patch-fixtures hostile-fixtures rule-fixtures \
	alloc-test-prereqs fuzz-bin
	@tests/run

bench: deps
	@$(MAKE) --no-print-directory all fixtures patch-fixtures alloc-bench-prereqs
	@sh tests/bench/run.sh

# `make V=1` shows the full commands.
ifeq ($(V),1)
Q :=
else
Q := @
endif

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  CC      $<"
	$(Q)$(CC) $(TOOL_CFLAGS) -MMD -MP -c $< -o $@

$(B)/san/%.o: %.c
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  CC-SAN  $<"
	$(Q)$(CC) $(TOOL_CFLAGS) $(SAN_FLAGS) -MMD -MP -c $< -o $@

$(TOOL): $(B)/obj/cmd/main.o $(TOOL_OBJ)
	@[ "$(V)" = 1 ] || echo "  LINK    $@"
	$(Q)$(CC) -o $@ $^ $(PKG_LIBS)

$(TOOL_SAN): $(B)/san/cmd/main.o $(TOOL_SAN_OBJ)
	@[ "$(V)" = 1 ] || echo "  LINK    $@"
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(PKG_LIBS)

# Unit tests link the engine (lib/ and rules/) built with sanitizers, never cmd/.
ENGINE_SAN_OBJ := $(filter $(B)/san/lib/% $(B)/san/rules/% $(B)/san/alloc/%,$(TOOL_SAN_OBJ))
$(B)/unit/%: tests/unit/%.c $(ENGINE_SAN_OBJ) $(wildcard tests/unit/*.h)
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  CC-SAN  $<"
	$(Q)$(CC) $(TOOL_CFLAGS) $(SAN_FLAGS) -o $@ $< $(ENGINE_SAN_OBJ) $(PKG_LIBS) $(CMOCKA_LIBS)

unit: $(UNIT_BIN)

include tests/fixtures/fixtures.mk
include tests/fixtures/perf.mk
include tests/fixtures/patch.mk
include tests/fixtures/hostile.mk
include tests/fixtures/rules.mk
include alloc/alloc.mk
include alloc/probe.mk
include tests/fuzz/fuzz.mk

format:
	clang-format -i $(wildcard cmd/*.[ch] lib/*.[ch] rules/*.[ch] alloc/*.[ch] tests/unit/*.[ch])

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
