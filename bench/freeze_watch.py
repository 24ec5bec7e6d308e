#!/usr/bin/env python3
"""Times the machine's own pauses of a CPU, so that the stall probe's
longest reply can be read against them.

On the 2-CPU virtual machine the benchmarks run on, a thread at the
highest real-time priority, spinning alone on a core that nothing else may
use, still lost the CPU for 8.7-8.8 ms at a time, in some runs a few times
a minute and in others not at all, sometimes on both cores at once: the
host took the virtual CPU away. A
write that waits for the server across such a pause is a stall the probe
counts, whichever server runs, and one of them in a save's window is
enough to decide the longest-stall figure.

    bench/freeze_watch.py watch CPU FILE
        on CPU, at real-time priority (SCHED_FIFO 50, above the probe), wake
        every millisecond and append "<due, CLOCK_MONOTONIC s> <late, ms>"
        to FILE for each wake-up more than 0.5 ms late, until SIGTERM. A
        thread at that priority is late only while its CPU is paused, or
        while the kernel keeps it from switching tasks (an interrupt, a
        softirq, kernel code that does not yield; this kernel does not
        preempt itself).
    bench/freeze_watch.py less TRACE FILE...
        for a probe trace (bench/stall_probe.py --trace) and the watchers'
        files, print "<longest reply less the pauses within it, ms>
        <longest pause within the trace's span, ms>": the files' pauses
        joined where they overlap, as a reply waits through either core's.

A late wake-up shows only the part of a pause after the wake-up was due, so
the time taken off a reply is never more than the pause itself.
"""
import os
import signal
import sys
import time

PERIOD = 0.001
LATE = 0.0005


def watch(cpu, path):
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with open(path, "w") as out:
        os.sched_setaffinity(0, {cpu})
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
        except PermissionError:
            # At a normal priority its lateness would be the server's use
            # of the core: record nothing rather than that.
            print("freeze_watch: no real-time priority, no pauses timed", file=sys.stderr)
            return
        due = time.monotonic() + PERIOD
        while not stop:
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            if now - due > LATE:
                out.write(f"{due:.6f} {(now - due) * 1000:.3f}\n")
                out.flush()
                due = now
            due += PERIOD
    # Back to a normal priority before the interpreter's exit, which at a
    # real-time one would itself hold the core for milliseconds.
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def pauses(paths):
    """The watchers' pauses as merged (start, end) intervals."""
    spans = []
    for path in paths:
        with open(path) as f:
            for line in f:
                due, late_ms = map(float, line.split())
                spans.append((due, due + late_ms / 1000))
    spans.sort()
    merged = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def less(trace, paths):
    merged = pauses(paths)
    longest_reply = 0.0
    first = last = None
    with open(trace) as f:
        for line in f:
            _, ms, sent = map(float, line.split())
            done = sent + ms / 1000
            first = sent if first is None else first
            last = done
            frozen = sum(max(0.0, min(done, e) - max(sent, s)) for s, e in merged if s < done and e > sent)
            longest_reply = max(longest_reply, ms - frozen * 1000)
    longest_pause = max(
        ((e - s) * 1000 for s, e in merged if first is not None and s < last and e > first),
        default=0.0,
    )
    print(f"{longest_reply:.2f} {longest_pause:.2f}")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "watch":
        watch(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) >= 4 and sys.argv[1] == "less":
        less(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
