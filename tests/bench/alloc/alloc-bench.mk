# SPDX-License-Identifier: MIT
# mdalloc benchmark programs (included from alloc/alloc.mk): the same source built for glibc (other
# allocators are preloaded into it), as a static musl program with musl's own malloc, and as a
# static musl program with mdalloc's musl archive embedded.
MD_BENCH_CFLAGS := -std=c11 -O2 -g $(WARN) -pthread

alloc-bench-prereqs: alloc $(B)/alloc-bench/bench-glibc $(B)/alloc-bench/bench-musl \
	$(B)/alloc-bench/bench-musl-mdalloc $(B)/alloc-bench/fastpath

$(B)/alloc-bench/fastpath: tests/bench/alloc/fastpath.c
	@mkdir -p $(@D)
	$(CC) $(MD_BENCH_CFLAGS) -o $@ $<

$(B)/alloc-bench/bench-glibc: tests/bench/alloc/bench.c
	@mkdir -p $(@D)
	$(CC) $(MD_BENCH_CFLAGS) -DBENCH_CJSON -o $@ $< -lcjson

# Debian ships no static cJSON, so the musl builds run every benchmark but cjson.
$(B)/alloc-bench/bench-musl: tests/bench/alloc/bench.c
	@mkdir -p $(@D)
	$(MUSL_CC) $(MD_BENCH_CFLAGS) -static -o $@ $<

$(B)/alloc-bench/bench-musl-mdalloc: tests/bench/alloc/bench.c $(B)/alloc/musl/libmdalloc.a
	@mkdir -p $(@D)
	$(MUSL_CC) $(MD_BENCH_CFLAGS) -static -o $@ $< \
		-Wl,--whole-archive $(B)/alloc/musl/libmdalloc.a -Wl,--no-whole-archive
