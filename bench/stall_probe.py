#!/usr/bin/env python3
"""Write-stall probe: one connection that sends a SET about every millisecond
and times each reply, until SIGTERM/SIGINT. redis-benchmark's latency
histogram stops at 3 s, so it cannot say how long the longest stall was;
this can.

On exit it prints one line:
    <max send->reply ms> <max gap between consecutive replies ms> <p99 ms> <count>
and, with --trace FILE, writes "send_unix_s latency_ms send_monotonic_s" per
request so the worst stall can be lined up with the server's log (wall
clock) or with a `perf record -k mono` trace (CLOCK_MONOTONIC).

    bench/stall_probe.py PORT [--key probe] [--trace FILE] [--realtime PRIO]
"""
import argparse
import os
import signal
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--key", default="stall-probe")
    ap.add_argument("--interval-ms", type=float, default=1.0)
    ap.add_argument("--trace")
    # SCHED_FIFO priority for the sending loop only: started at that
    # priority (chrt), the interpreter's own start-up held a loaded core for
    # up to 100 ms, which the load generator sharing it counted as latency.
    ap.add_argument("--realtime", type=int, metavar="PRIO")
    args = ap.parse_args()

    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    s = socket.create_connection(("127.0.0.1", args.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = args.key.encode()
    interval = args.interval_ms / 1000.0
    if args.realtime:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.realtime))
    lat = []
    trace = []
    max_gap = 0.0
    last_reply = None
    n = 0
    next_send = time.monotonic()
    while not stop:
        val = str(n).encode()
        cmd = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(val), val)
        t0 = time.monotonic()
        wall = time.time()
        try:
            s.sendall(cmd)
            buf = b""
            while not buf.endswith(b"\r\n"):
                chunk = s.recv(64)
                if not chunk:
                    stop = True
                    break
                buf += chunk
        except InterruptedError:
            continue
        except OSError:
            break
        t1 = time.monotonic()
        if stop and not buf:
            break
        lat.append(t1 - t0)
        if args.trace:
            trace.append((wall, (t1 - t0) * 1000, t0))
        if last_reply is not None:
            max_gap = max(max_gap, t1 - last_reply)
        last_reply = t1
        n += 1
        next_send += interval
        delay = next_send - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_send = time.monotonic()
    s.close()
    if args.realtime:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    if args.trace:
        with open(args.trace, "w") as f:
            for wall, ms, mono in trace:
                f.write(f"{wall:.6f} {ms:.3f} {mono:.6f}\n")
    if not lat:
        print("0 0 0 0")
        return
    srt = sorted(lat)
    p99 = srt[min(len(srt) - 1, int(len(srt) * 0.99))]
    print(f"{max(lat) * 1000:.2f} {max_gap * 1000:.2f} {p99 * 1000:.2f} {len(lat)}")


if __name__ == "__main__":
    sys.exit(main())
