# The trace probe (LD_PRELOAD), one build per libc. Included by the top Makefile.
PROBE_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g -fPIC -fvisibility=hidden -I. $(WARN)
PROBE_GLIBC := $(B)/alloc/probe/glibc/libmdprobe.so
PROBE_MUSL := $(B)/alloc/probe/musl/libmdprobe.so

# One LD_PRELOAD path for the processes of either libc in a traced tree: glibc's loader expands
# $PLATFORM in it (x86_64; haswell or xeon_phi on some Intel CPUs) to the glibc probe, musl's
# takes it literally, to a directory of that name with the musl probe.
PROBE_ANY := $(B)/alloc/probe/any/x86_64

.PHONY: probe
probe: $(PROBE_GLIBC) $(PROBE_MUSL) $(PROBE_ANY)

$(PROBE_ANY): alloc/probe.mk
	@mkdir -p $(@D)
	$(Q)for p in x86_64 haswell xeon_phi; do ln -sfn ../glibc $(@D)/$$p; done
	$(Q)ln -sfn ../musl '$(@D)/$$PLATFORM'

PROBE_SRC := alloc/probe.c alloc/probe_code.c alloc/probe_proc.c
PROBE_HDRS := alloc/probe_code.h alloc/probe_proc.h alloc/probe_shared.h alloc/probe_stamp.h
PROBE_GLIBC_OBJ := $(PROBE_SRC:alloc/%.c=$(B)/obj/probe/glibc/%.o)
PROBE_MUSL_OBJ := $(PROBE_SRC:alloc/%.c=$(B)/obj/probe/musl/%.o)

# The probe's operator new may be left by an exception (alloc/probe.c): -fexceptions runs its
# cleanup then. The unwinder it needs is made a weak reference, so that the probe does not bring
# libgcc_s (or a copy of the unwinder) into C programs: every C++ runtime loads libgcc_s, which
# resolves it. A weak undefined symbol pulls nothing from libgcc.a, nor makes libgcc_s needed.
PROBE_UNWIND_WEAK := --weaken-symbol=__gcc_personality_v0 --weaken-symbol=_Unwind_Resume

# One object per source and libc, so that make -j builds them side by side and remakes only what
# changed. $(1): the compiler. It writes a temporary that objcopy copies to the object, so that
# a failed objcopy leaves no object that looks up to date.
define probe_compile
	@mkdir -p $(@D)
	$(Q)$(1) $(PROBE_CFLAGS) -fexceptions -c -o $@.tmp $< && \
		objcopy $(PROBE_UNWIND_WEAK) $@.tmp $@; rc=$$?; rm -f $@.tmp; exit $$rc
endef

$(B)/obj/probe/glibc/%.o: alloc/%.c $(PROBE_HDRS) alloc/probe.mk
	@[ "$(V)" = 1 ] || echo "  CC      $@"
	$(call probe_compile,$(CC))

$(B)/obj/probe/musl/%.o: alloc/%.c $(PROBE_HDRS) alloc/probe.mk
	@[ "$(V)" = 1 ] || echo "  MUSL-CC $@"
	$(call probe_compile,$(MUSL_CC))

$(PROBE_GLIBC): $(PROBE_GLIBC_OBJ)
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  LINK    $@"
	$(Q)$(CC) $(PROBE_CFLAGS) -shared -o $@ $^ -ldl -lpthread

$(PROBE_MUSL): $(PROBE_MUSL_OBJ)
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  MUSL-LD $@"
	$(Q)$(MUSL_CC) $(PROBE_CFLAGS) -shared -o $@ $^

# The static probe: a freestanding program that loads a static executable and hooks its
# allocator (alloc/probe_static.c). Linked at a fixed address far from where static programs are
# linked (0x400000), so it needs no relocation; no libc, since the program brings its own.
PROBE_STATIC := $(B)/alloc/probe/static/md-static-probe
PROBE_STATIC_CFLAGS := -std=c11 -O2 -g -I. $(WARN) -ffreestanding -fno-builtin -fno-stack-protector \
	-fPIE -fcf-protection=none -fno-tree-loop-distribute-patterns
probe: $(PROBE_STATIC)

$(PROBE_STATIC): alloc/probe_static.c alloc/probe_static.h alloc/hook_x86.c alloc/hook_x86.h \
		alloc/probe_shared.h alloc/probe_stamp.h
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  CC      $@"
	$(Q)$(CC) $(PROBE_STATIC_CFLAGS) -static -nostdlib -no-pie -Wl,-Ttext-segment=0x7e0000000000 \
		-o $@ alloc/probe_static.c alloc/hook_x86.c
