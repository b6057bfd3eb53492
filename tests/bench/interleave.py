#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Times commands in interleaved rounds: each round runs every command once, the order rotated
by one from round to round, so that no command always follows the same one.

This machine's speed drifts in phases of seconds (other guests on the host): hyperfine's
back-to-back runs of one command can all land in a slow phase and another command's in a fast
one. Interleaving spreads every phase over all commands; the median and the minimum per command
are printed as a markdown table, with ratios of the medians to the first command, and as JSON
(--json FILE) for the per-call arithmetic.

usage: interleave.py [--rounds N] [--json FILE] -n NAME COMMAND [-n NAME COMMAND ...]
(hyperfine's way of naming commands, so that one argument list serves both)
"""
import json
import shlex
import statistics
import subprocess
import sys
import time


def main(argv):
    rounds, json_path = 8, None
    while argv and argv[0].startswith("--"):
        if len(argv) < 2 or argv[0] not in ("--rounds", "--json"):
            sys.exit(f"interleave.py: {argv[0]}: unknown option or missing value")
        opt, value, argv = argv[0], argv[1], argv[2:]
        if opt == "--rounds":
            rounds = int(value)
        else:
            json_path = value
    if rounds < 1 or not argv or len(argv) % 3 or any(flag != "-n" for flag in argv[0::3]):
        sys.exit(__doc__)
    commands = list(zip(argv[1::3], argv[2::3]))
    times = {name: [] for name, _ in commands}
    if len(times) != len(commands):
        sys.exit("interleave.py: two commands have the same name")
    for k in range(rounds + 1):  # the first round warms caches and is not kept
        for name, command in commands[k % len(commands):] + commands[:k % len(commands)]:
            start = time.perf_counter()
            subprocess.run(shlex.split(command), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - start)
    for name in times:
        times[name] = times[name][1:]
    base = statistics.median(times[commands[0][0]])
    print(f"| {rounds} interleaved rounds | median | min | ratio |")
    print("|:---|---:|---:|---:|")
    for name, _ in commands:
        median = statistics.median(times[name])
        print(f"| {name} | {median * 1e3:.1f} ms | {min(times[name]) * 1e3:.1f} ms | "
              f"{median / base:.2f} |")
    if json_path:
        with open(json_path, "w") as f:
            json.dump({name: statistics.median(t) for name, t in times.items()}, f)


if __name__ == "__main__":
    main(sys.argv[1:])
