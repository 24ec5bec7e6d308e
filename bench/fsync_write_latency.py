#!/usr/bin/env python3
"""Does write() wait for a concurrent fdatasync of the same file?

Appends CHUNK-byte writes to PATH at RATE MB/s for SECS seconds while a
second thread fdatasyncs the file once a second (as the everysec fsync
thread does), then compares the latency of the writes issued while an
fdatasync ran with the others. Redis postpones everysec writes during a
background fsync on the grounds that write() blocks meanwhile; this shows
what the filesystem under PATH does.

    bench/fsync_write_latency.py PATH [SECS=6] [CHUNK=65536] [RATE=150]
"""
import os
import sys
import threading
import time


def summary(lat):
    if not lat:
        return "n=0"
    lat = sorted(lat)
    return (f"n={len(lat)} p50={lat[len(lat) // 2] * 1e3:.3f} "
            f"p99={lat[int(len(lat) * .99)] * 1e3:.3f} max={lat[-1] * 1e3:.1f} ms")


def main():
    path = sys.argv[1]
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 6
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 65536
    rate = float(sys.argv[4]) if len(sys.argv) > 4 else 150
    chunk = b"x" * size
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    done = threading.Event()
    spans = []

    def syncer():
        while not done.wait(1):
            t = time.perf_counter()
            os.fdatasync(fd)
            spans.append((t, time.perf_counter()))

    th = threading.Thread(target=syncer)
    th.start()
    writes = []
    t0 = time.perf_counter()
    n = 0
    try:
        while time.perf_counter() - t0 < secs:
            t = time.perf_counter()
            os.write(fd, chunk)
            writes.append((t, time.perf_counter() - t))
            n += 1
            pause = t0 + n * size / (rate * 1e6) - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    finally:
        done.set()
        th.join()
        os.close(fd)
        os.unlink(path)
    inside = [d for t, d in writes if any(a <= t <= b for a, b in spans)]
    outside = [d for t, d in writes if not any(a <= t <= b for a, b in spans)]
    print(f"{rate:g} MB/s in {size}-byte writes; fdatasync ms: {[round((b - a) * 1e3) for a, b in spans]}")
    print(f"  writes during an fdatasync: {summary(inside)}")
    print(f"  other writes:               {summary(outside)}")


if __name__ == "__main__":
    main()
