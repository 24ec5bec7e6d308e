#!/usr/bin/env python3
"""Memory at rest of one big collection, Redoubt next to Redis 7.

    bench/collection_memory.py [TYPES] [COUNT]
    bench/collection_memory.py set,hash,zset,list 1000000   # the defaults
    bench/collection_memory.py stream 1000000

For each type, a fresh server of each kind (persistence off) gets one key
with COUNT elements, added through `redis-cli --pipe` in commands of 1000
elements (SADD / HSET / ZADD / RPUSH; members like `element:000000000042`,
hash values and zset members of the same shape); a stream gets one
`XADD k * field value:000000000042` per element, sent 1000 at a time. Reports the RSS growth
divided by COUNT and the OBJECT ENCODING of the key. Environment:
REDOUBT_BIN (default target/release/redoubt-server, built if missing),
REDIS_SERVER (default redis-server).
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 1000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def resp(*args):
    out = [f"*{len(args)}\r\n"]
    for a in args:
        out.append(f"${len(a)}\r\n{a}\r\n")
    return "".join(out)


def commands(kind, count):
    for start in range(0, count, BATCH):
        ids = range(start, min(start + BATCH, count))
        if kind == "set":
            yield resp("SADD", "k", *[f"element:{i:012d}" for i in ids])
        elif kind == "list":
            yield resp("RPUSH", "k", *[f"element:{i:012d}" for i in ids])
        elif kind == "hash":
            pairs = [x for i in ids for x in (f"field:{i:012d}", f"value:{i:012d}")]
            yield resp("HSET", "k", *pairs)
        elif kind == "zset":
            pairs = [x for i in ids for x in (str(i), f"member:{i:012d}")]
            yield resp("ZADD", "k", *pairs)
        elif kind == "stream":
            yield "".join(resp("XADD", "k", "*", "field", f"value:{i:012d}") for i in ids)
        else:
            raise SystemExit(f"unknown type {kind}")


def measure(binary, kind, count):
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="redoubt-mem.")
    cli = ["redis-cli", "-p", str(port)]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if subprocess.run(cli + ["PING"], capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        before = rss_bytes(proc.pid)
        data = "".join(commands(kind, count)).encode()
        subprocess.run(cli + ["--pipe"], input=data, capture_output=True, check=True)
        after = rss_bytes(proc.pid)
        enc = subprocess.run(cli + ["OBJECT", "ENCODING", "k"], capture_output=True,
                             text=True).stdout.strip()
        return (after - before) / count, enc
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    kinds = (sys.argv[1] if len(sys.argv) > 1 else "set,hash,zset,list").split(",")
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    redoubt = os.environ.get("REDOUBT_BIN",
                             os.path.join(ROOT, "target", "release", "redoubt-server"))
    if not os.path.exists(redoubt):
        subprocess.run(["cargo", "build", "--release", "-p", "redoubt-server"], cwd=ROOT,
                       check=True)
    redis = shutil.which(os.environ.get("REDIS_SERVER", "redis-server"))
    if redis is None:
        raise SystemExit("missing: redis-server")
    print("| type | elements | Redoubt bytes/element | Redis bytes/element | ratio | encoding |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind in kinds:
        a, enc = measure(redoubt, kind, count)
        b, _ = measure(redis, kind, count)
        print(f"| {kind} | {count} | {a:.1f} | {b:.1f} | {a / b:.2f} | {enc} |")


if __name__ == "__main__":
    main()
