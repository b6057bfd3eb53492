# SPDX-License-Identifier: MIT
# mdalloc test programs (included from alloc/alloc.mk). Each program is built four ways: for
# glibc (run with LD_PRELOAD), for musl's libc.so (LD_PRELOAD), as a static musl program with
# mdalloc's musl archive linked in, and as a static glibc program with mdalloc's glibc archive. The archive is linked whole: libc.a members that
# come later (stdio calling realloc, say) must find mdalloc's symbols already defined rather than
# pull in musl's own malloc.
MD_TEST_PROGS := conformance stress fork_mt churn_rss boundaries misuse purge dirty_reuse oom_reclaim fresh_purge realloc_grow realloc_shrink huge_purge limits steady_purge
# Programs of glibc's extensions (malloc_trim), which musl does not have.
MD_TEST_GLIBC_PROGS := trim
MD_TEST_CFLAGS := -std=c11 -O2 -g $(WARN) -pthread
MD_TEST_BINS := $(patsubst %,$(B)/alloc-tests/glibc/%,$(MD_TEST_PROGS)) \
	$(patsubst %,$(B)/alloc-tests/musl/%,$(MD_TEST_PROGS)) \
	$(patsubst %,$(B)/alloc-tests/static/%,$(MD_TEST_PROGS)) \
	$(patsubst %,$(B)/alloc-tests/gstatic/%,$(MD_TEST_PROGS)) \
	$(B)/alloc-tests/static-plain/stress \
	$(B)/alloc-tests/glibc/fork_lib $(B)/alloc-tests/musl/fork_lib \
	$(patsubst %,$(B)/alloc-tests/glibc/%,$(MD_TEST_GLIBC_PROGS)) \
	$(patsubst %,$(B)/alloc-tests/gstatic/%,$(MD_TEST_GLIBC_PROGS))

alloc-test-prereqs: alloc $(MD_TEST_BINS)

$(B)/alloc-tests/glibc/%: tests/alloc/%.c
	@mkdir -p $(@D)
	$(CC) $(MD_TEST_CFLAGS) -o $@ $<

$(B)/alloc-tests/musl/%: tests/alloc/%.c
	@mkdir -p $(@D)
	$(MUSL_CC) $(MD_TEST_CFLAGS) -o $@ $<

$(B)/alloc-tests/static/%: tests/alloc/%.c $(B)/alloc/musl/libmdalloc.a
	@mkdir -p $(@D)
	$(MUSL_CC) $(MD_TEST_CFLAGS) -static -o $@ $< \
		-Wl,--whole-archive $(B)/alloc/musl/libmdalloc.a -Wl,--no-whole-archive

$(B)/alloc-tests/gstatic/%: tests/alloc/%.c $(B)/alloc/glibc/libmdalloc.a
	@mkdir -p $(@D)
	$(CC) $(MD_TEST_CFLAGS) -static -o $@ $< \
		-Wl,--whole-archive $(B)/alloc/glibc/libmdalloc.a -Wl,--no-whole-archive

# The same stress program with musl's own malloc, to show the test tells them apart.
$(B)/alloc-tests/static-plain/%: tests/alloc/%.c
	@mkdir -p $(@D)
	$(MUSL_CC) $(MD_TEST_CFLAGS) -static -o $@ $<

# A program whose library registers allocating fork handlers before a preloaded mdalloc does
# (preload builds only: a static link has no library constructors of its own order).
$(B)/alloc-tests/glibc/libatfork.so: tests/alloc/atfork_lib.c
	@mkdir -p $(@D)
	$(CC) $(MD_TEST_CFLAGS) -shared -fPIC -o $@ $<

$(B)/alloc-tests/musl/libatfork.so: tests/alloc/atfork_lib.c
	@mkdir -p $(@D)
	$(MUSL_CC) $(MD_TEST_CFLAGS) -shared -fPIC -o $@ $<

$(B)/alloc-tests/glibc/fork_lib: tests/alloc/fork_lib.c $(B)/alloc-tests/glibc/libatfork.so
	$(CC) $(MD_TEST_CFLAGS) -o $@ $< -L$(@D) -latfork -Wl,-rpath,'$$ORIGIN'

$(B)/alloc-tests/musl/fork_lib: tests/alloc/fork_lib.c $(B)/alloc-tests/musl/libatfork.so
	$(MUSL_CC) $(MD_TEST_CFLAGS) -o $@ $< -L$(@D) -latfork -Wl,-rpath,'$$ORIGIN'

$(filter %/fork_mt %/fork_lib,$(MD_TEST_BINS)): tests/alloc/deadlock_watch.h
