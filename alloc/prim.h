// SPDX-License-Identifier: MIT
// The one narrow interface between mdalloc and the operating system. Nothing else in alloc/ makes
// a system call. Implementations never touch errno (free() must preserve it) and never allocate
// (they run inside malloc, also when mdalloc replaces musl's malloc inside libc.a).
#ifndef MD_PRIM_H
#define MD_PRIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Map `size` bytes of zeroed read-write memory, preferably at `hint`; NULL on failure.
void *md_prim_mmap(void *hint, size_t size);
void md_prim_munmap(void *addr, size_t size);
// Give the pages back: later reads see zeros, RSS drops at once.
void md_prim_purge(void *addr, size_t size);
// Grow or shrink a mapping in place (never moves); false if the kernel refuses.
bool md_prim_remap_in_place(void *addr, size_t old_size, size_t new_size);
// Move the mapping at addr onto `target`, a mapping of new_size bytes it replaces, growing it to
// new_size: the kernel moves the page tables, nothing is copied. false if the kernel refuses
// (then both mappings are left as they were).
bool md_prim_remap_to(void *addr, size_t old_size, size_t new_size, void *target);
// Move the mapping at addr to a new address aligned to `align`, chosen by the kernel, growing it
// to new_size; needs only the growth and 2 * align bytes of address space beyond the old mapping.
// NULL if the kernel refuses (the mapping is left as it was).
void *md_prim_remap_aligned(void *addr, size_t old_size, size_t new_size, size_t align);
uint64_t md_prim_clock_ms(void);
void md_prim_write_stderr(const char *s, size_t len);
void md_prim_write_fd(int fd, const char *s, size_t len);
// The path of the file open at fd (at most size - 1 bytes) if it is a regular file or a terminal,
// which can be opened again by that path; false otherwise.
bool md_prim_fd_path(int fd, char *buf, size_t size);
// The device and inode of the regular file or character device path names, not following a
// symbolic link; false if it is none of those (a link, a FIFO, missing).
bool md_prim_path_identity(const char *path, uint64_t *dev, uint64_t *ino);
// Open path for appending (close-on-exec, never as a controlling terminal, never through a
// symbolic link); -1 on failure.
int md_prim_open_append(const char *path);
// The device and inode of the file open at fd; false if fd is not open.
bool md_prim_fd_identity(int fd, uint64_t *dev, uint64_t *ino);
void md_prim_close(int fd);
void md_prim_yield(void);
// Sleep while *word holds `expected`, at most about timeout_ms; md_prim_wake_all(word) ends the
// sleep early. Returns also for no reason (a signal): the caller checks its condition again.
// True when the sleep ran out.
bool md_prim_wait(_Atomic int *word, int expected, uint32_t timeout_ms);
void md_prim_wake_all(_Atomic int *word);
// The value of an environment variable, or NULL; must not allocate.
const char *md_prim_getenv(const char *name);
size_t md_prim_os_page_size(void);
// 64 random bits from the kernel (the process's AT_RANDOM bytes); never allocates.
uint64_t md_prim_random64(void);

#endif
