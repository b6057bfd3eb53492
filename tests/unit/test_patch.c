// SPDX-License-Identifier: GPL-3.0-or-later
// The archive reader and writer behind `malloc-doctor patch`, on members of the real musl libc.a:
// a written archive reads back identically (duplicate and long names included), writing is a
// fixpoint (deterministic), and the symbol index points every definition at its member.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/archive.h"
#include "lib/elf_file.h"
#include "lib/patch_mark.h"
#include "lib/sha256.h"

#define MUSL_LIBC "/usr/lib/x86_64-linux-musl/libc.a"

static struct md_archive libc;

static int load_libc(void **state)
{
    (void)state;
    struct md_error err;
    return md_archive_read(&libc, MUSL_LIBC, &err);
}

static int free_libc(void **state)
{
    (void)state;
    md_archive_free(&libc);
    return 0;
}

// Both free.lo members, a name longer than 15 bytes, and a few ordinary ones.
static size_t pick(const struct md_ar_member **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < libc.count && n < max; i++) {
        const char *name = libc.members[i].name;
        if (!strcmp(name, "free.lo") || strlen(name) > 15 || !strcmp(name, "memcpy.lo") ||
            !strcmp(name, "strlen.lo"))
            out[n++] = &libc.members[i];
    }
    return n;
}

static char *write_temp(const unsigned char *buf, size_t size)
{
    char *path = strdup("/tmp/md-test-archive.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, size), (ssize_t)size);
    close(fd);
    return path;
}

static void reads_musl_with_duplicate_members(void **state)
{
    (void)state;
    size_t frees = 0;
    for (size_t i = 0; i < libc.count; i++)
        frees += !strcmp(libc.members[i].name, "free.lo");
    assert_int_equal(frees, 2);
    assert_true(libc.has_map);
    assert_string_equal(libc.target, "elf64-x86-64");
}

static void written_archive_reads_back_identically(void **state)
{
    (void)state;
    const struct md_ar_member *m[64];
    size_t n = pick(m, 64);
    assert_true(n > 10);
    unsigned char *buf;
    size_t size;
    struct md_error err;
    assert_int_equal(md_archive_serialize(m, n, &buf, &size, &err), 0);
    char *path = write_temp(buf, size);
    struct md_archive back;
    assert_int_equal(md_archive_read_digest(&back, path, &err), 0);
    char want[65]; // the digest of the bytes written, from the same open file the members came from
    md_sha256_hex(buf, size, want);
    assert_string_equal(back.sha256, want);
    assert_int_equal(back.file_size, size);
    assert_memory_equal(back.bytes, buf, size); // what patch -o copies when nothing is to change
    assert_int_equal(back.count, n);
    assert_true(back.has_map);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(back.members[i].name, m[i]->name);
        assert_int_equal(back.members[i].size, m[i]->size);
        assert_memory_equal(back.members[i].data, m[i]->data, m[i]->size);
    }
    // writing what was read gives the same bytes: deterministic, nothing stamped
    const struct md_ar_member *again[64];
    for (size_t i = 0; i < n; i++)
        again[i] = &back.members[i];
    unsigned char *buf2;
    size_t size2;
    assert_int_equal(md_archive_serialize(again, n, &buf2, &size2, &err), 0);
    assert_int_equal(size2, size);
    assert_memory_equal(buf2, buf, size);
    md_archive_free(&back);
    unlink(path);
    free(path), free(buf), free(buf2);
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool member_defines(const struct md_ar_member *m, const char *name)
{
    for (size_t j = 0; j < m->nsyms; j++)
        if (md_sym_is_def(m->syms[j].kind) && !strcmp(m->syms[j].name, name))
            return true;
    return false;
}

static void symbol_index_points_at_the_defining_member(void **state)
{
    (void)state;
    const struct md_ar_member *m[64];
    size_t n = pick(m, 64), defs = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < m[i]->nsyms; j++)
            defs += md_sym_is_def(m[i]->syms[j].kind);
    unsigned char *buf;
    size_t size;
    struct md_error err;
    assert_int_equal(md_archive_serialize(m, n, &buf, &size, &err), 0);
    // GNU index "/", date, uid and gid zero, as `ar D` writes them
    assert_memory_equal(buf, "!<arch>\n/               0           0     0     0       ", 56);
    const unsigned char *index = buf + 8 + 60;
    uint32_t count = be32(index);
    assert_int_equal(count, defs);
    const char *name = (const char *)index + 4 + 4 * count;
    for (uint32_t k = 0; k < count; k++, name += strlen(name) + 1) {
        uint32_t off = be32(index + 4 + 4 * k);
        assert_true(off % 2 == 0 && off + 60 <= size);
        // the member at that offset has our bytes and defines the symbol
        size_t at;
        const unsigned char *hdr = buf + off;
        assert_memory_equal(hdr + 58, "`\n", 2);
        size_t msize = strtoul((const char *)hdr + 48, NULL, 10);
        for (at = 0; at < n; at++)
            if (m[at]->size == msize && !memcmp(hdr + 60, m[at]->data, msize) &&
                member_defines(m[at], name))
                break;
        assert_true(at < n);
    }
    free(buf);
}

static void refuses_what_is_not_an_archive(void **state)
{
    (void)state;
    struct md_archive ar;
    struct md_error err;
    char *path = write_temp((const unsigned char *)"hello, not an archive\n", 22);
    assert_int_equal(md_archive_read(&ar, path, &err), -1);
    assert_non_null(strstr(err.msg, "not an ar archive"));
    md_archive_free(&ar);
    unlink(path);
    free(path);
}

// A copy cut short keeps the ar magic: the reader names the damaged header as inspect does,
// instead of "not an ar archive" (libbfd's view) or a truncated member.
static void names_the_header_of_a_truncated_copy(void **state)
{
    (void)state;
    const struct md_ar_member *m[8];
    size_t n = pick(m, 8);
    unsigned char *buf = NULL;
    size_t size = 0;
    struct md_archive ar;
    struct md_error err;
    assert_int_equal(md_archive_serialize(m, n, &buf, &size, &err), 0);
    size_t cuts[] = {5000 < size ? 5000 : size / 2, size - 10};
    for (size_t i = 0; i < 2; i++) {
        char *path = write_temp(buf, cuts[i]);
        assert_int_equal(md_archive_read(&ar, path, &err), -1);
        assert_non_null(strstr(err.msg, ": corrupt archive member header at offset "));
        assert_non_null(strstr(err.msg, " (bad size)"));
        md_archive_free(&ar);
        unlink(path);
        free(path);
    }
    free(buf);
}

// The mark patch adds reads back through the archive reader as an object that defines nothing,
// and gives back the original's size and SHA-256 (the digest of "abc" is FIPS 180-4's example).
static void mark_reads_back_and_defines_nothing(void **state)
{
    (void)state;
    struct md_patch_mark mark = {.size = 3}, found;
    md_sha256_hex("abc", 3, mark.sha256);
    struct md_ar_member member;
    struct md_error err;
    assert_int_equal(md_patch_mark_member(&libc.members[0], &mark, &member, &err), 0);
    const struct md_ar_member *m[] = {&libc.members[0], &member};
    unsigned char *buf;
    size_t size;
    assert_int_equal(md_archive_serialize(m, 2, &buf, &size, &err), 0);
    char *path = write_temp(buf, size);
    struct md_archive back;
    assert_int_equal(md_archive_read(&back, path, &err), 0);
    assert_int_equal(back.count, 2);
    assert_string_equal(back.members[1].name, MD_PATCH_MARK_MEMBER);
    assert_int_equal(back.members[1].nsyms, 0);
    assert_true(md_patch_mark_find(&back, &found));
    assert_int_equal(found.size, 3);
    assert_string_equal(found.sha256, mark.sha256);
    assert_false(md_patch_mark_find(&libc, &found)); // musl's own libc.a has none
    md_archive_free(&back);
    md_patch_mark_free(&member);
    unlink(path);
    free(path), free(buf);
}

// FIPS 180-4 / NIST test vectors: the empty input, a tail of 56 bytes (the length needs a second
// block), a million bytes (many blocks); and tails of 55, 63 and 64 bytes (sha256sum's digests).
static void sha256_known_vectors(void **state)
{
    (void)state;
    char hex[65];
    md_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    md_sha256_hex(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *million = malloc(1000000);
    assert_non_null(million);
    memset(million, 'a', 1000000);
    md_sha256_hex(million, 1000000, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    md_sha256_hex(million, 55, hex);
    assert_string_equal(hex, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    md_sha256_hex(million, 63, hex);
    assert_string_equal(hex, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34");
    md_sha256_hex(million, 64, hex);
    assert_string_equal(hex, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
    free(million);
}

// A mark made like a 32-bit big-endian object is a valid ELF file of that kind.
static void mark_follows_class_and_byte_order(void **state)
{
    (void)state;
    unsigned char header[52] = {0x7f, 'E', 'L', 'F', 1, 2, 1};
    header[17] = 1; // ET_REL, big-endian
    header[19] = 8; // EM_MIPS
    struct md_ar_member like = {.name = "mips.o", .data = header, .size = sizeof header}, member;
    struct md_patch_mark mark = {.size = 0}, found;
    struct md_error err;
    md_sha256_hex("", 0, mark.sha256);
    assert_int_equal(md_patch_mark_member(&like, &mark, &member, &err), 0);
    assert_int_equal(md_elf_check_image(member.data, member.size, "mark", &err), 0);
    assert_memory_equal(member.data, header, 20); // ident, ET_REL (0 1: big-endian), machine
    struct md_archive ar = {.members = &member, .count = 1};
    assert_true(md_patch_mark_find(&ar, &found));
    assert_string_equal(found.sha256, mark.sha256);
    md_patch_mark_free(&member);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_musl_with_duplicate_members),
        cmocka_unit_test(written_archive_reads_back_identically),
        cmocka_unit_test(symbol_index_points_at_the_defining_member),
        cmocka_unit_test(refuses_what_is_not_an_archive),
        cmocka_unit_test(names_the_header_of_a_truncated_copy),
        cmocka_unit_test(mark_reads_back_and_defines_nothing),
        cmocka_unit_test(sha256_known_vectors),
        cmocka_unit_test(mark_follows_class_and_byte_order),
    };
    return cmocka_run_group_tests(tests, load_libc, free_libc);
}
