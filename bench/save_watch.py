#!/usr/bin/env python3
"""Watches a server during bench/snapshot.sh's loaded save, from one
long-lived process on the client core.

The script used to poll with a shell loop: every 50 ms a redis-cli, tr and
awk for INFO, every 100 ms an awk (and a pgrep) for memory. On the client
core, shared with redis-benchmark and the stall probe, those forks took
the core for up to 8 ms at a time (perf sched of a loaded save), during the
save only: the probe then counted its own wait for the core as a write
stall of the server, and the load lost throughput, whichever server ran.
Here each poll is one request on an open connection or one /proc read.

    save_watch.py wait PORT FIELD    exit once INFO persistence's FIELD is 0
    save_watch.py save PORT COMMAND FIELD DELAY
                                     after DELAY seconds, send COMMAND (BGSAVE
                                     or BGREWRITEAOF), wait as above and print
                                     the seconds from the command to the end
                                     and the SET calls the server counted in
                                     them (INFO commandstats): started with
                                     the load, its own start-up (tens of ms
                                     of CPU) is long over when the save and
                                     the probe's window begin
    save_watch.py sample PID FILE    append the server's memory to FILE every
                                     100 ms (KiB: RSS plus its children's
                                     Private_Dirty, i.e. a forked child's
                                     copy-on-write) until SIGTERM
"""
import signal
import socket
import sys
import time


def info(sock, reader, section):
    sock.sendall(b"*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n" % (len(section), section))
    header = reader.readline()
    if not header.startswith(b"$"):
        raise RuntimeError(f"unexpected INFO reply: {header!r}")
    return reader.read(int(header[1:]) + 2).decode()


def info_field(sock, reader, field):
    for line in info(sock, reader, b"persistence").splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return value.strip()
    return ""


def set_calls(sock, reader):
    """SET calls so far (INFO commandstats' cmdstat_set line)."""
    for line in info(sock, reader, b"commandstats").splitlines():
        name, _, value = line.partition(":")
        if name == "cmdstat_set":
            return int(value.split(",")[0].removeprefix("calls="))
    return 0


def wait(port, field):
    sock = socket.create_connection(("127.0.0.1", port))
    reader = sock.makefile("rb")
    while info_field(sock, reader, field) == "1":
        time.sleep(0.05)


def save(port, command, field, delay):
    sock = socket.create_connection(("127.0.0.1", port))
    reader = sock.makefile("rb")
    time.sleep(delay)
    calls = set_calls(sock, reader)
    start = time.monotonic()
    sock.sendall(b"*1\r\n$%d\r\n%s\r\n" % (len(command), command.encode()))
    reply = reader.readline()
    if not reply.startswith(b"+"):
        raise RuntimeError(f"{command} failed: {reply!r}")
    while info_field(sock, reader, field) == "1":
        time.sleep(0.05)
    secs = time.monotonic() - start
    print(f"{secs:.3f} {set_calls(sock, reader) - calls}")


def kib(path, key):
    total = 0
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    total += int(line.split()[1])
    except OSError:
        pass
    return total


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return f.read().split()
    except OSError:
        return []


def sample(pid, path):
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    with open(path, "a") as out:
        while not stop:
            kb = kib(f"/proc/{pid}/status", "VmRSS:")
            for child in children(pid):
                kb += kib(f"/proc/{child}/smaps_rollup", "Private_Dirty:")
            out.write(f"{kb}\n")
            out.flush()
            time.sleep(0.1)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "wait":
        wait(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "save":
        save(int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]))
    elif len(sys.argv) == 4 and sys.argv[1] == "sample":
        sample(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
