#!/bin/sh
# inspect speed, side by side with the fragments people use today (nm -D, strings | grep), on the
# same files: all of /usr/bin, and one library over 100 MB.
# Goals (issue 2): under 0.3 s for the 100 MB file, at least 200 files/s on /usr/bin.
set -eu
. "$(dirname "$0")/usage.sh"
bench_usage "$@"
T=${MD_TOOL:-build/malloc-doctor}
big=""
for f in "$HOME"/.rustup/toolchains/*/lib/librustc_driver-*.so /usr/lib/x86_64-linux-gnu/libLLVM*.so.*; do
    [ -f "$f" ] && [ "$(stat -Lc %s "$f")" -gt 100000000 ] && { big=$f; break; }
done
elves=$(for f in /usr/bin/*; do [ -f "$f" ] && [ ! -L "$f" ] && head -c 4 "$f" | grep -q ELF && echo "$f"; done | wc -l)
echo "inspect benchmark: $elves ELF files in /usr/bin; big file: ${big:-none found} ($( [ -n "$big" ] && stat -Lc %s "$big" || echo 0) bytes)"
out=$(mktemp)
hyperfine -i --runs 2 --export-markdown "$out" --style none \
    -n "malloc-doctor inspect -r /usr/bin" "$T inspect -r /usr/bin" \
    -n "nm -D (each file)" "sh -c 'for f in /usr/bin/*; do nm -D \$f; done' >/dev/null 2>&1" \
    -n "strings | grep (all files)" "sh -c 'strings /usr/bin/* | grep -c malloc' >/dev/null 2>&1" \
    >/dev/null
cat "$out"
if [ -n "$big" ]; then
    hyperfine -i --warmup 1 --runs 10 --export-markdown "$out" --style none \
        -n "malloc-doctor inspect BIG" "$T inspect $big" \
        -n "nm -D BIG" "nm -D $big" \
        -n "strings BIG | grep" "sh -c 'strings $big | grep -c malloc'" >/dev/null
    cat "$out"
fi
hyperfine -i --runs 5 --export-json "$out" "$T inspect -r /usr/bin" >/dev/null 2>&1
secs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["mean"])' "$out")
python3 -c "print('inspect: %.0f files/s on /usr/bin (goal >= 200)' % ($elves / $secs))"
# scaling with the number of files: hard links of one dynamic program, 10,000 and 30,000 of them
# (until session 22 every file counted the report's entries again: 30,000 files took 17.6 s)
links=$(mktemp -d)
cp /usr/bin/true "$links/t1"
for i in $(seq 2 30000); do ln "$links/t1" "$links/t$i"; done
mkdir "$links/10k"
for i in $(seq 1 10000); do ln "$links/t$i" "$links/10k/t$i"; done
hyperfine -i --runs 3 --export-json "$out" "$T inspect -r $links/10k" "$T inspect $links/t*" \
    >/dev/null 2>&1
python3 - "$out" <<'PY'
import json, sys
r = [x["mean"] for x in json.load(open(sys.argv[1]))["results"]]
print("inspect of 10,000 files: %.2f s (%.0f files/s); 30,000: %.2f s (%.0f files/s); "
      "time per file 30k/10k: %.2f (1.00 is linear)" % (r[0], 1e4 / r[0], r[1], 3e4 / r[1],
                                                         (r[1] / 3e4) / (r[0] / 1e4)))
PY
rm -rf "$links"
rm -f "$out"
