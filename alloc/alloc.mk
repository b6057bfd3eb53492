# mdalloc build rules, included by the top Makefile (placeholder until mdalloc lands).
.PHONY: alloc alloc-test-prereqs alloc-bench-prereqs
alloc:
alloc-test-prereqs:
alloc-bench-prereqs:
