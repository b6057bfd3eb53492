# The trace probe (LD_PRELOAD), one build per libc. Included by the top Makefile.
PROBE_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g -fPIC -fvisibility=hidden -I. $(WARN)
PROBE_GLIBC := $(B)/alloc/probe/glibc/libmdprobe.so
PROBE_MUSL := $(B)/alloc/probe/musl/libmdprobe.so

.PHONY: probe
probe: $(PROBE_GLIBC) $(PROBE_MUSL)

$(PROBE_GLIBC): alloc/probe.c alloc/probe_shared.h
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  CC      $@"
	$(Q)$(CC) $(PROBE_CFLAGS) -shared -o $@ $< -ldl -lpthread

$(PROBE_MUSL): alloc/probe.c alloc/probe_shared.h
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  MUSL-CC $@"
	$(Q)$(MUSL_CC) $(PROBE_CFLAGS) -shared -o $@ $<
