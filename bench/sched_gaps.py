#!/usr/bin/env python3
"""Why was the server's thread off its CPU, and what did the probe wait on?

Reads a scheduler trace of a loaded save and breaks down
  1. every gap in which the server's main thread (the executor) was off its
     CPU: its state when it left (R = preempted, S = asleep, D = blocked in
     the kernel), and what held the CPU meanwhile;
  2. with --trace (bench/stall_probe.py --trace), every slow probe reply:
     what ran on the server's CPU while the probe waited.

Record it while a BGSAVE runs under load (server pinned to one CPU):

    perf record -k mono -a -g -o perf.data \\
        -e sched:sched_switch -e sched:sched_wakeup -- sleep 20
    perf script -i perf.data -F cpu,time,event,trace | grep sched_switch > sw.txt
    perf sched timehist -i perf.data --state > th.txt
    bench/sched_gaps.py sw.txt th.txt SERVER_PID [--cpu 0] [--trace probe-trace]

`-k mono` stamps events with CLOCK_MONOTONIC, the clock of the probe's third
trace column. th.txt names every thread as comm[tid/pid]: threads of
SERVER_PID other than the executor count as the server's own (encoder,
writer, allocator).
"""
import argparse
import bisect
import collections
import re

KERNEL = ("ksoftirqd", "rcu_", "kworker", "migration", "cpuhp", "kcompact", "kswapd", "jbd2")
HELPERS = ("bash", "redis-cli", "tr", "awk", "sleep", "python3", "perf", "taskset",
           "cat", "pgrep", "date", "bc", "kill")
SWITCH = re.compile(
    r"\[(\d+)\]\s+(\d+\.\d+):.*prev_comm=(.*?) prev_pid=(\d+) .*prev_state=(\S+)"
    r" ==> next_comm=(.*?) next_pid=(\d+)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("switches")
    ap.add_argument("timehist")
    ap.add_argument("pid")
    ap.add_argument("--cpu", type=int, default=0)
    ap.add_argument("--trace")
    ap.add_argument("--slow-ms", type=float, default=5.0)
    a = ap.parse_args()

    with open(a.timehist) as f:
        ours = set(re.findall(r"\[(\d+)/" + a.pid + r"\]", f.read()))

    def who(comm, tid):
        if tid == a.pid:
            return "executor"
        if comm.startswith("swapper"):
            return "idle"
        if tid in ours:
            return "server's own threads"
        if comm.startswith(KERNEL):
            return "kernel threads"
        if comm in HELPERS:
            return "shell helpers"
        return "other processes"

    ev = []  # (time, prev tid, prev state, next comm, next tid) on the CPU
    with open(a.switches) as f:
        for line in f:
            m = SWITCH.match(line)
            if m and int(m[1]) == a.cpu:
                ev.append((float(m[2]), m[4], m[5], m[6], m[7]))
    if not ev:
        print("no sched_switch events on that CPU")
        return

    def occupants(i, end):
        """CPU time (ms) by occupant from event i until `end`."""
        ran = collections.Counter()
        while i < len(ev) - 1 and ev[i][0] < end:
            ran[who(ev[i][3], ev[i][4])] += (min(ev[i + 1][0], end) - ev[i][0]) * 1000
            i += 1
        return ran

    gaps = collections.defaultdict(lambda: [0, 0, 0, 0.0])
    states = collections.Counter()
    out = None
    for j, e in enumerate(ev):
        if e[1] == a.pid:
            out = (e[0], e[2], j)
            states[e[2]] += 1
        if e[4] == a.pid and out:
            off = (e[0] - out[0]) * 1000
            ran = occupants(out[2], e[0])
            main_one = ran.most_common(1)[0][0] if ran else "-"
            g = gaps[(out[1], main_one)]
            g[0] += 1
            g[1] += off >= 2
            g[2] += off >= 5
            g[3] = max(g[3], off)
            out = None
    print(f"executor switch-outs by state: {dict(states)}")
    print(f"{'state':5} {'main occupant meanwhile':22} {'gaps':>6} {'>=2ms':>6} {'>=5ms':>6} {'max ms':>7}")
    for (st, occ), g in sorted(gaps.items(), key=lambda kv: -kv[1][1]):
        print(f"{st:5} {occ:22} {g[0]:6} {g[1]:6} {g[2]:6} {g[3]:7.2f}")

    if not a.trace:
        return
    times = [e[0] for e in ev]
    total = collections.Counter()
    slow = []
    with open(a.trace) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            ms, sent = float(parts[1]), float(parts[2])
            end = sent + ms / 1000
            if ms < a.slow_ms or sent < times[0] or end > times[-1]:
                continue
            i = max(bisect.bisect_right(times, sent) - 1, 0)
            ran = occupants(i, end)
            # The first occupant was on the CPU before the send: count it
            # from the send.
            if times[i] < sent:
                ran[who(ev[i][3], ev[i][4])] -= (sent - times[i]) * 1000
            total.update(ran)
            slow.append((ms, sent, ran))
    if not slow:
        print(f"no probe reply of {a.slow_ms} ms or more inside the trace")
        return
    print(f"\n{len(slow)} probe replies >= {a.slow_ms} ms; the CPU's time during them, "
          "average ms per reply:")
    for k, v in total.most_common():
        print(f"  {k}: {v / len(slow):.2f}")
    print("longest:")
    for ms, sent, ran in sorted(slow, key=lambda s: -s[0])[:8]:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in ran.most_common() if v >= 0.01)
        print(f"  {ms:7.2f} ms at {sent:.4f}: {parts}")


if __name__ == "__main__":
    main()
