#!/usr/bin/env python3
"""Keeps the server's core free of the machine's other tasks during a run.

    bench/free_core.py CORE SAVEFILE      move every task that can run
                                          elsewhere off CORE; write what
                                          each was allowed before to SAVEFILE
    bench/free_core.py --restore SAVEFILE put them back

On the 2-CPU virtual machine the benchmarks run on, `perf sched` showed
the machine's own agents taking the server's core in bursts: the VM's
process manager (pid 1, threads at nice -10) for 5-26 ms at a time, about
once a second, and the kernel's DAMON thread (kdamond.0) for 2-5 ms. Each
burst is a stall of whichever server runs there, longer than the 5 ms the
snapshot benchmark measures against. The stall benches move such tasks to
the other cores for their run, for both servers alike, and restore them at
the end. Tasks bound to the core alone (per-CPU kernel threads) stay.
"""
import os
import sys


def tasks():
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            if tid.isdigit():
                yield int(tid)


def free(core, save):
    moved = kept = 0
    with open(save, "w") as out:
        for tid in tasks():
            try:
                allowed = os.sched_getaffinity(tid)
            except OSError:
                continue
            rest = allowed - {core}
            if core not in allowed or not rest:
                continue
            try:
                os.sched_setaffinity(tid, rest)
            except OSError:
                kept += 1
                continue
            out.write("%d %s\n" % (tid, ",".join(map(str, sorted(allowed)))))
            moved += 1
    print(f"free_core: {moved} tasks moved off core {core}, {kept} could not move", file=sys.stderr)


def restore(save):
    try:
        lines = open(save).read().split("\n")
    except OSError:
        return
    for line in lines:
        if not line:
            continue
        tid, cpus = line.split()
        try:
            os.sched_setaffinity(int(tid), {int(c) for c in cpus.split(",")})
        except OSError:
            pass  # the task has ended


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--restore":
        restore(sys.argv[2])
    elif len(sys.argv) == 3:
        free(int(sys.argv[1]), sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
