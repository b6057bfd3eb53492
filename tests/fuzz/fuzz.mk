# libFuzzer targets for the engine's parsers (tests/fuzz/README.md). Included from the Makefile.
#
# The engine (lib/ and rules/) is built again with clang and coverage instrumentation under
# $(B)/fuzz/obj; each tests/fuzz/fuzz_NAME.c links it into $(B)/fuzz/fuzz_NAME.
#
#   make fuzz                      each target for FUZZ_SECONDS, seeded from tests/fuzz/corpus/NAME
#   make fuzz FUZZ_TARGETS=strace  just one
#   make fuzz-bin                  build only (a prerequisite of `make check`)
#
# Adding a target: write tests/fuzz/fuzz_NAME.c, seed tests/fuzz/corpus/NAME/, add NAME here.
FUZZ_TARGETS := inspect archive strace baseline hook

FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_CC := clang
FZ := $(B)/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# The gcc warning set; clang does not know -Wno-format-truncation, hence -Wno-unknown-warning-option.
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -O1 -g $(WARN) -Wno-unknown-warning-option -I. $(PKG_CFLAGS) \
	-DMD_VERSION='"$(VERSION)"' $(FUZZ_SAN)

FUZZ_ENGINE_SRC := $(filter-out $(MD_EXCLUDE),$(ENGINE_SRC))
FUZZ_ENGINE_OBJ := $(FUZZ_ENGINE_SRC:%.c=$(FZ)/obj/%.o)
FUZZ_BIN := $(FUZZ_TARGETS:%=$(FZ)/fuzz_%)
# the objects are reached only through the fuzz_% pattern rule: keep them between builds
.SECONDARY: $(FUZZ_ENGINE_OBJ)

.PHONY: fuzz fuzz-bin fuzz-smoke fuzz-regress

fuzz-bin: $(FUZZ_BIN)

$(FZ)/obj/%.o: %.c
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  CC-FUZZ $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FZ)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_ENGINE_OBJ) $(wildcard tests/fuzz/*.h)
	@[ "$(V)" = 1 ] || echo "  LD-FUZZ $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $(filter %.c %.o,$^) $(PKG_LIBS)

# The long run: one target at a time, one job (the machine is shared), on a scratch copy of the
# committed corpus so that new inputs never dirty the source tree.
fuzz: $(FUZZ_BIN)
	@status=0; for t in $(FUZZ_TARGETS); do \
		FUZZ_BUILD=$(FZ) tests/fuzz/run.sh $$t $(FUZZ_SECONDS) || status=1; \
	done; exit $$status

# What `make test` runs (through tests/run): a short run per target and the regression inputs.
fuzz-smoke: $(FUZZ_BIN)
	@status=0; for t in $(FUZZ_TARGETS); do \
		FUZZ_BUILD=$(FZ) tests/fuzz/run.sh $$t $(FUZZ_SMOKE_SECONDS) --fresh || status=1; \
	done; exit $$status

fuzz-regress: $(FUZZ_BIN)
	@status=0; for t in $(FUZZ_TARGETS); do \
		FUZZ_BUILD=$(FZ) tests/fuzz/regress.sh $$t || status=1; \
	done; exit $$status
