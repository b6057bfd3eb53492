# SPDX-License-Identifier: MIT
# mdalloc build rules, included by the top Makefile (uses B, CC, MUSL_CC, WARN from there).
#
# One portable core, three thin glues:
#   $(B)/alloc/glibc/libmdalloc.so        LD_PRELOAD for glibc programs
#   $(B)/alloc/glibc/libmdalloc-debug.so  same, with internal consistency checks (MDALLOC_DEBUG)
#   $(B)/alloc/glibc/libmdalloc.a         one object, mdalloc.o, for static glibc programs
#   $(B)/alloc/musl/libmdalloc.so         LD_PRELOAD for programs linked with musl's libc.so
#   $(B)/alloc/musl/libmdalloc.a          one musl-gcc object, mdalloc.o, that replaces malloc in
#                                         musl's libc.a (no debug info, internals made local)
#   $(B)/alloc/musl/members.txt           which musl libc.a members it replaces, with their symbols

OBJCOPY ?= objcopy
MD_CORE := prim_linux sizeclass segment page heap options alloc thread_posix check
MD_HDRS := $(wildcard alloc/*.h)
# The -fno-builtin flags stop the compiler from turning code inside the allocator into calls to
# malloc/calloc (e.g. malloc+memset -> calloc), which would recurse.
MD_CFLAGS := -std=c11 -O2 -g -fPIC -fvisibility=hidden -fno-plt $(WARN) \
	-fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc -fno-builtin-free
MD_DEBUG_CFLAGS := $(filter-out -O2,$(MD_CFLAGS)) -O1 -DMDALLOC_DEBUG

MD_GLIBC_OBJ := $(patsubst %,$(B)/alloc/obj-glibc/%.o,$(MD_CORE) api_public glue_glibc)
MD_GLIBC_DBG_OBJ := $(patsubst %,$(B)/alloc/obj-glibc-debug/%.o,$(MD_CORE) api_public glue_glibc)
MD_MUSL_OBJ := $(patsubst %,$(B)/alloc/obj-musl/%.o,$(MD_CORE) api_public glue_musl)
MD_MUSL_EMBED_OBJ := $(patsubst %,$(B)/alloc/obj-musl/%.o,$(MD_CORE) glue_musl_embed)

MD_ALLOC_OUT := $(B)/alloc/glibc/libmdalloc.so $(B)/alloc/glibc/libmdalloc-debug.so \
	$(B)/alloc/glibc/libmdalloc.a \
	$(B)/alloc/musl/libmdalloc.so $(B)/alloc/musl/libmdalloc.a $(B)/alloc/musl/members.txt \
	$(B)/alloc/any/x86_64

.PHONY: alloc alloc-test-prereqs alloc-bench-prereqs
alloc: $(MD_ALLOC_OUT)

# One LD_PRELOAD path for either libc (trace --compare in a tree of both): glibc's loader expands
# $PLATFORM, musl's does not (the same as the probe's, alloc/probe.mk).
$(B)/alloc/any/x86_64: alloc/alloc.mk
	@mkdir -p $(@D)
	$(Q)for p in x86_64 haswell xeon_phi; do ln -sfn ../glibc $(@D)/$$p; done
	$(Q)ln -sfn ../musl '$(@D)/$$PLATFORM'

$(B)/alloc/obj-glibc/%.o: alloc/%.c $(MD_HDRS) alloc/alloc.mk
	@mkdir -p $(@D)
	$(CC) $(MD_CFLAGS) -DMD_REALLOC_ZERO_FREES=1 -c $< -o $@

$(B)/alloc/obj-glibc-debug/%.o: alloc/%.c $(MD_HDRS) alloc/alloc.mk
	@mkdir -p $(@D)
	$(CC) $(MD_DEBUG_CFLAGS) -DMD_REALLOC_ZERO_FREES=1 -c $< -o $@

$(B)/alloc/obj-musl/%.o: alloc/%.c $(MD_HDRS) alloc/alloc.mk
	@mkdir -p $(@D)
	$(MUSL_CC) $(MD_CFLAGS) -DMD_REALLOC_ZERO_FREES=0 -c $< -o $@

# What libc.a embeds ends up in every static program linked with it: one relocatable object whose
# hidden names (md_options, md_print, ...) are made local, so that they cannot clash with a
# program's own (hidden visibility does not keep names apart in a static link), and without the
# core's debug info (the build machine's paths, ~185 KB per program; musl's libc.a has none).
$(B)/alloc/obj-musl-embed/mdalloc.o: $(MD_MUSL_EMBED_OBJ)
	@mkdir -p $(@D)
	$(LD) -r -o $@.tmp $^
	$(OBJCOPY) --localize-hidden --strip-debug $@.tmp $@
	rm -f $@.tmp

$(B)/alloc/glibc/libmdalloc.so: $(MD_GLIBC_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $^ -lpthread

$(B)/alloc/glibc/libmdalloc-debug.so: $(MD_GLIBC_DBG_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $^ -lpthread

# The glibc archive is linked into static programs too (--whole-archive): the same one object,
# with the glibc build's strong public names (they must win over glibc's own malloc.o).
$(B)/alloc/obj-glibc-static/mdalloc.o: $(MD_GLIBC_OBJ)
	@mkdir -p $(@D)
	$(LD) -r -o $@.tmp $^
	$(OBJCOPY) --localize-hidden --strip-debug $@.tmp $@
	rm -f $@.tmp

$(B)/alloc/glibc/libmdalloc.a: $(B)/alloc/obj-glibc-static/mdalloc.o
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(B)/alloc/musl/libmdalloc.so: $(MD_MUSL_OBJ)
	@mkdir -p $(@D)
	$(MUSL_CC) -shared -o $@ $^

$(B)/alloc/musl/libmdalloc.a: $(B)/alloc/obj-musl-embed/mdalloc.o
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(B)/alloc/musl/members.txt: alloc/glue_musl_embed.c
	@mkdir -p $(@D)
	sed -n 's|^//   \(.*\) -> \(.*\)$$|\1 -> \2|p' $< > $@

-include tests/alloc/alloc-tests.mk
-include tests/bench/alloc/alloc-bench.mk
