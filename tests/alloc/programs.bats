#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Real programs under LD_PRELOAD give the same output as with their own malloc; the statistics
# and the banner work; the musl archive has everything musl's libc.a expects from its malloc.
load helpers

setup() {
    WORK=$BATS_TEST_TMPDIR
}

# same_output CMD...: run with and without mdalloc, compare stdout and exit status.
same_output() {
    run "$@"
    local plain_status=$status plain_output=$output
    MDALLOC_VERBOSE=1 LD_PRELOAD=$MDA_GLIBC_SO run "$@"
    [ "$status" -eq "$plain_status" ]
    [[ "$output" == *"mdalloc: version"* ]] # it really ran under mdalloc
    local filtered
    filtered=$(printf '%s\n' "$output" | grep -v '^mdalloc: ')
    [ "$filtered" = "$plain_output" ]
}

@test "python3 (threads, dicts, big strings) under mdalloc: identical output" {
    cat >"$WORK/p.py" <<'PY'
import hashlib, json, threading
out = []
def work(k):
    d = {str(i): [i] * (i % 17) for i in range(20000 + k)}
    s = json.dumps(d, sort_keys=True)
    out.append((k, hashlib.sha256(s.encode()).hexdigest(), len(s)))
ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
big = "x" * (50 << 20)
print(sorted(out), len(big), sum(len(str(i)) for i in range(300000)))
PY
    same_output /usr/bin/python3 "$WORK/p.py"
}

# git repack (and so gc) fails under bats even without mdalloc ("bad revision '<test name>'";
# outside bats it works): the test packs with git archive instead.
@test "git (init, commit, log, archive, fsck) under mdalloc: identical output" {
    export GIT_AUTHOR_DATE='2026-01-01T00:00:00Z' GIT_COMMITTER_DATE='2026-01-01T00:00:00Z'
    export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t
    for d in a b; do
        mkdir -p "$WORK/$d"
        git -C "$WORK/$d" init -q
        cp "$MD_ROOT"/alloc/*.c "$WORK/$d/"
        git -C "$WORK/$d" add . && git -C "$WORK/$d" commit -qm one
    done
    same_output git -C "$WORK/a" log --stat --format='%H %s'
    same_output git -C "$WORK/a" archive --format=tar HEAD
    LD_PRELOAD=$MDA_GLIBC_SO run git -C "$WORK/b" count-objects -v
    [ "$status" -eq 0 ]
    LD_PRELOAD=$MDA_GLIBC_SO run git -C "$WORK/b" fsck --strict
    [ "$status" -eq 0 ]
}

@test "gcc compiling a file under mdalloc: identical object code" {
    gcc -O2 -c "$MD_ROOT/tests/alloc/stress.c" -o "$WORK/plain.o"
    LD_PRELOAD=$MDA_GLIBC_SO gcc -O2 -c "$MD_ROOT/tests/alloc/stress.c" -o "$WORK/md.o"
    cmp "$WORK/plain.o" "$WORK/md.o"
}

@test "g++ under mdalloc builds a threaded C++ program that runs identically under mdalloc" {
    cat >"$WORK/m.cpp" <<'CXX'
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>
int main()
{
    std::vector<std::thread> ts;
    std::vector<size_t> out(4);
    for (int t = 0; t < 4; t++)
        ts.emplace_back([t, &out] {
            std::map<std::string, std::vector<int>> m;
            for (int i = 0; i < 50000; i++)
                m[std::to_string(i * (t + 1))].push_back(i);
            size_t s = 0;
            for (auto &kv : m)
                s += kv.first.size() + kv.second.size();
            out[t] = s;
        });
    for (auto &t : ts)
        t.join();
    for (auto s : out)
        std::cout << s << "\n";
}
CXX
    LD_PRELOAD=$MDA_GLIBC_SO run g++ -O1 -pthread "$WORK/m.cpp" -o "$WORK/m"
    [ "$status" -eq 0 ]
    same_output "$WORK/m"
}

@test "sort of a large input under mdalloc: identical output" {
    seq 1 300000 | sed 's/$/ line/' | shuf --random-source=<(yes) >"$WORK/in"
    sort "$WORK/in" >"$WORK/plain"
    LD_PRELOAD=$MDA_GLIBC_SO sort "$WORK/in" >"$WORK/md"
    cmp "$WORK/plain" "$WORK/md"
}

@test "MDALLOC_STATS=1 prints counters at exit" {
    MDALLOC_STATS=1 run_with glibc conformance usable
    [ "$status" -eq 0 ]
    [[ "$output" == *"mdalloc: stats: mmap_calls "[0-9]* ]]
    [[ "$output" == *"mdalloc: stats: madvise_calls "* ]]
    [[ "$output" == *"mdalloc: stats: peak_committed_bytes "[1-9]* ]]
    [[ "$output" == *"mdalloc: stats: class 0 size 8 pages_set_up "[1-9]* ]]
    [[ "$output" == *"mdalloc: stats: class 1 size 16 pages_set_up "[1-9]* ]]
}

# The counters are printed from a destructor, after programs that close stderr at exit did so
# (coreutils' close_stdout: sort, ls); before session 8 nothing was printed then. mdalloc records
# stderr's file at initialisation and opens it again by its path (a file or terminal; a pipe has
# none, so there the counters are lost).
@test "MDALLOC_STATS=1 prints counters when the program closed stderr before exit" {
    for flavor in glibc static gstatic; do
        local pre=""
        [ $flavor != glibc ] || pre=$MDA_GLIBC_SO
        MDALLOC_STATS=1 LD_PRELOAD=$pre "$MDA_TESTS/$flavor/conformance" usable close_stderr \
            >/dev/null 2>"$WORK/stats"
        echo "$flavor:" && cat "$WORK/stats"
        grep -q '^mdalloc: stats: mmap_calls [0-9]' "$WORK/stats"
        grep -q '^mdalloc: stats: peak_committed_bytes [1-9]' "$WORK/stats"
    done
    echo b | MDALLOC_STATS=1 LD_PRELOAD=$MDA_GLIBC_SO sort >"$WORK/sorted" 2>"$WORK/stats"
    cat "$WORK/stats"
    grep -q '^mdalloc: stats: mmap_calls [0-9]' "$WORK/stats"
}

# Opening a file can act on it (a tape device rewinds, a read lease breaks): stderr's path is
# opened again only if it still names the recorded file itself, checked before the open. Here the
# program replaced it by a symbolic link to another file and closed stderr; before, mdalloc opened
# the link's target and only then saw that it was another file.
@test "MDALLOC_STATS=1: stderr's path replaced by a symbolic link is not opened at exit" {
    cd "$WORK"
    echo other >other
    strace -qq -o trace.log -e trace=openat -E LD_PRELOAD="$MDA_GLIBC_SO" -E MDALLOC_STATS=1 \
        bash -c 'rm err && ln -s other err && exec 2>&-' 2>err
    cat trace.log
    [ -L err ] && [ "$(cat other)" = other ]
    [ "$(grep -cF "\"$WORK/err\"" trace.log)" = 0 ]
    # the check does not stop the file itself from getting them
    strace -qq -o trace.log -e trace=openat -E LD_PRELOAD="$MDA_GLIBC_SO" -E MDALLOC_STATS=1 \
        bash -c 'exec 2>&-' 2>stats
    grep -F "\"$WORK/stats\"" trace.log
    grep -q '^mdalloc: stats: mmap_calls [0-9]' stats
}

@test "MDALLOC_STATS set or not: no descriptor of mdalloc's stays open" {
    for stats in 0 1; do
        MDALLOC_STATS=$stats LD_PRELOAD="$MDA_GLIBC_SO" ls /proc/self/fd >"$WORK/fds" 2>/dev/null
        cat "$WORK/fds"
        [ "$(grep -c . "$WORK/fds")" -eq "$(ls /proc/self/fd 2>/dev/null | grep -c .)" ]
    done
}

@test "the libraries carry the identifying string 'mdalloc: ' even when stripped" {
    strip -o "$WORK/stripped.so" "$MDA_GLIBC_SO"
    grep -q 'mdalloc: version' "$WORK/stripped.so"
    grep -q 'mdalloc: version' "$MDA_MUSL_SO"
    strip -o "$WORK/stripped-static" "$MDA_TESTS/static/stress"
    grep -q 'mdalloc: version' "$WORK/stripped-static"
}

@test "musl archive defines every malloc symbol musl's libc.a defines, and nothing clashing" {
    local libc=/usr/lib/x86_64-linux-musl/libc.a
    # symbols defined by musl's malloc members (mallocng internals excluded: nothing else uses them)
    local wanted
    wanted=$(nm -A "$libc" 2>/dev/null |
        grep -E '^[^:]+:(malloc|lite_malloc|free|realloc|calloc|libc_calloc|donate|aligned_alloc|memalign|posix_memalign|reallocarray|malloc_usable_size|valloc)\.lo:' |
        awk '$2 ~ /^[TW]$/ {print $3}' | grep -vE '^__malloc_(alloc_meta)$' | sort -u)
    [ -n "$wanted" ]
    local have
    have=$(nm --defined-only "$MDA_MUSL_A" | awk '$2 ~ /^[TW]$/ {print $3}' | sort -u)
    for sym in $wanted; do
        grep -qx "$sym" <<<"$have" || { echo "missing $sym"; return 1; }
    done
    for sym in __libc_malloc_impl __libc_free __libc_realloc __malloc_donate __malloc_atfork \
        __malloc_allzerop free_sized free_aligned_sized pvalloc; do
        grep -qx "$sym" <<<"$have" || { echo "missing $sym"; return 1; }
    done
    # the internals (md_*) are local: a static program may use their names for itself. Globally
    # defined are only the public API and names reserved to the implementation (__x, _X)
    nm -g --defined-only "$MDA_MUSL_A" | awk 'NF == 3 {print $3}' >"$WORK/globals"
    grep -qx __libc_malloc "$WORK/globals"
    run grep -vxE '__.*|_[A-Z].*|malloc|free|calloc|realloc|aligned_alloc|memalign|posix_memalign|reallocarray|valloc|pvalloc|free_sized|free_aligned_sized|malloc_usable_size' "$WORK/globals"
    echo "$output"
    [ "$status" -eq 1 ]
    nm --defined-only "$MDA_MUSL_A" | grep -qE ' [tdbr] md_options$'
}

@test "musl archive: the public API is weak (a program's own malloc replaces it), libc's entry points strong, no debug info" {
    local defs
    defs=$(nm -g --defined-only "$MDA_MUSL_A" | awk 'NF == 3 {print $2, $3}')
    for sym in malloc free calloc realloc aligned_alloc posix_memalign malloc_usable_size; do
        grep -qx "W $sym" <<<"$defs" || { echo "$sym not weak"; return 1; }
    done
    for sym in __libc_malloc __libc_free __libc_calloc __libc_realloc __malloc_atfork; do
        grep -qx "T $sym" <<<"$defs" || { echo "$sym not strong"; return 1; }
    done
    run bash -c "readelf -S -W '$MDA_MUSL_A' | grep -c '\.debug_'"
    [ "$output" = 0 ]
}

@test "glibc archive: only the public API and reserved names are global, no debug info; a program may name md_options" {
    nm -g --defined-only "$MDA_GLIBC_A" | awk 'NF == 3 {print $3}' >"$WORK/globals"
    grep -qx malloc "$WORK/globals"
    run grep -vxE '__.*|_[A-Z].*|malloc|free|calloc|realloc|aligned_alloc|memalign|posix_memalign|reallocarray|valloc|pvalloc|free_sized|free_aligned_sized|malloc_usable_size|malloc_trim|mallopt|mallinfo2?|malloc_stats|malloc_info' "$WORK/globals"
    echo "$output"
    [ "$status" -eq 1 ]
    run bash -c "readelf -S -W '$MDA_GLIBC_A' | grep -c '\.debug_'"
    [ "$output" = 0 ]
    # a static glibc program with a function of mdalloc's internal name links and runs on mdalloc
    printf '#include <stdio.h>\n#include <stdlib.h>\nint md_options(void) { return 42; }\nint main(void) { void *p = malloc(100); printf("%%d\\n", md_options()); free(p); return 0; }\n' >"$WORK/names.c"
    gcc -static -O2 -o "$WORK/names" "$WORK/names.c" -Wl,--whole-archive "$MDA_GLIBC_A" -Wl,--no-whole-archive
    run env MDALLOC_VERBOSE=1 "$WORK/names"
    [ "$status" -eq 0 ]
    [[ "$output" == *"mdalloc: version "* ]]
    [[ "$output" == *42 ]]
}

@test "glibc archive: a static program that calls mallopt, mallinfo, malloc_stats or malloc_info links and gets mdalloc's" {
    # each of them pulled glibc's malloc.o into the link, whose malloc clashed with mdalloc's
    cat >"$WORK/tune.c" <<'EOF'
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
    int accepted = mallopt(M_ARENA_MAX, 1);
    void *volatile p = malloc(100000);
    struct mallinfo2 wide = mallinfo2();
    struct mallinfo narrow = mallinfo();
    printf("mallopt %d, mapped %d %d\n", accepted, wide.arena > 0, narrow.arena > 0);
    fflush(stdout);
    malloc_stats();
    malloc_info(0, stdout);
    free(p);
    return 0;
}
EOF
    gcc -static -O2 -Wno-deprecated-declarations -o "$WORK/tune" "$WORK/tune.c" \
        -Wl,--whole-archive "$MDA_GLIBC_A" -Wl,--no-whole-archive
    run "$WORK/tune"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "mallopt 1, mapped 1 1" ]
    [[ "$output" == *"mdalloc: stats: mmap_calls "* ]]
    [[ "$output" == *'<malloc version="mdalloc">'* ]]
}

# glibc's malloc_info refuses any option by returning EINVAL and leaves errno alone; mdalloc's
# returned -1 with errno EINVAL.
@test "malloc_info with an option returns EINVAL and leaves errno, as glibc's (preload and archive)" {
    cat >"$WORK/info.c" <<'EOF'
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
int main(void)
{
    errno = 0;
    int ret = malloc_info(1, stdout);
    printf("ret %d errno %d\n", ret, errno);
    return 0;
}
EOF
    gcc -O2 -o "$WORK/info" "$WORK/info.c"
    gcc -static -O2 -o "$WORK/info-static" "$WORK/info.c" \
        -Wl,--whole-archive "$MDA_GLIBC_A" -Wl,--no-whole-archive
    [ "$("$WORK/info")" = "ret 22 errno 0" ] # glibc's own
    run env LD_PRELOAD="$MDA_GLIBC_SO" "$WORK/info"
    [ "$output" = "ret 22 errno 0" ]
    run "$WORK/info-static"
    [ "$output" = "ret 22 errno 0" ]
}

@test "musl archive objects make no libc call that could pull musl's malloc back in" {
    run bash -c "nm --undefined-only '$MDA_MUSL_A' | awk '{print \$2}' | sort -u"
    [ "$status" -eq 0 ]
    for sym in $output; do
        case $sym in
        # getauxval: AT_RANDOM for the misuse-check secret (musl reads its saved auxv, no malloc)
        md_* | _GLOBAL_OFFSET_TABLE_ | memcpy | memset | getenv | clock_gettime | sysconf | abort | strlen | __errno_location | \
            ___errno_location | pthread_key_create | pthread_setspecific | __stack_chk_fail | __tls_get_addr | getauxval) ;;
        *) echo "unexpected libc dependency: $sym"; return 1 ;;
        esac
    done
}
