#!/usr/bin/env bash
# RDB load, SAVE and file size: Redoubt and Redis 7.0.15 side by side, on
# the same dump made by Redis ($KEYS strings of $SIZE bytes plus a mix of
# hashes, lists, sets, sorted sets and streams). Results go to BENCHMARKS.md
# between the rdb markers.
#
#   KEYS=2000000 SIZE=256 COLLECTIONS=20000 bench/rdb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-2000000}
SIZE=${SIZE:-256}
COLLECTIONS=${COLLECTIONS:-20000}
RUNS=${RUNS:-3}
SERVER_CORE=${SERVER_CORE:-0}
OUT=${OUT:-BENCHMARKS.md}

command -v redis-server >/dev/null || { echo "redis-server not found (apt-get install redis-server)"; exit 1; }
cargo build --release -q -p redoubt-server
BIN=$PWD/target/release/redoubt-server
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # name dir port -> pid
  if [ "$1" = redoubt ]; then
    taskset -c "$SERVER_CORE" "$BIN" --port "$3" --dir "$2" --save '' --enable-debug-command yes >>"$2/log" 2>&1 &
  else
    taskset -c "$SERVER_CORE" redis-server --port "$3" --dir "$2" --save '' --appendonly no \
      --enable-debug-command yes --daemonize no >>"$2/log" 2>&1 &
  fi
  echo $!
}
wait_up() { until redis-cli -p "$1" ping 2>/dev/null | grep -q PONG; do sleep 0.01; done; }

# 1. The data set, built and saved by Redis.
mkdir -p "$WORK/make"
port=$(free_port)
pid=$(start redis "$WORK/make" "$port")
wait_up "$port"
redis-cli -p "$port" debug populate "$KEYS" key "$SIZE" >/dev/null
python3 - "$COLLECTIONS" >"$WORK/collections.txt" <<'EOF'
import sys
n = int(sys.argv[1])
def cmd(*a):
    out = [f"*{len(a)}"]
    for x in a:
        x = str(x)
        out.append(f"${len(x.encode())}")
        out.append(x)
    return "\r\n".join(out) + "\r\n"
w = sys.stdout.write
for i in range(n):
    w(cmd("HSET", f"hash:{i}", *[v for f in range(10) for v in (f"field{f}", f"value{f}-{i}")]))
    w(cmd("RPUSH", f"list:{i}", *[f"item{j}-{i}" for j in range(20)]))
    w(cmd("SADD", f"iset:{i}", *range(i, i + 16)))
    w(cmd("SADD", f"set:{i}", *[f"member{j}" for j in range(16)]))
    w(cmd("ZADD", f"zset:{i}", *[v for j in range(20) for v in (j * 1.5, f"m{j}")]))
    if i % 20 == 0:
        for j in range(50):
            w(cmd("XADD", f"stream:{i}", f"{j + 1}-0", "sensor", str(j), "reading", str(j * 3)))
# A few big collections.
for k in range(4):
    w(cmd("RPUSH", f"biglist:{k}", *[f"e{j}" for j in range(20000)]))
    w(cmd("HSET", f"bighash:{k}", *[v for j in range(5000) for v in (f"f{j}", f"v{j}")]))
    w(cmd("ZADD", f"bigzset:{k}", *[v for j in range(5000) for v in (j, f"m{j}")]))
EOF
redis-cli -p "$port" --pipe <"$WORK/collections.txt" >/dev/null
redis-cli -p "$port" save >/dev/null
total_keys=$(redis-cli -p "$port" dbsize)
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
wait "$pid" 2>/dev/null || true
DUMP=$WORK/make/dump.rdb
dump_bytes=$(stat -c %s "$DUMP")

# 2. For each server: load time (from its own log line, best of $RUNS),
#    SAVE time (best of $RUNS) and the size of the file it writes.
measure() {
  local name=$1 dir=$WORK/$1 best_load=999 best_save=999 size=0
  mkdir -p "$dir"
  for _ in $(seq "$RUNS"); do
    cp "$DUMP" "$dir/dump.rdb"
    : >"$dir/log"
    local port pid
    port=$(free_port)
    pid=$(start "$name" "$dir" "$port")
    wait_up "$port"
    local load
    load=$(grep -o 'DB loaded from disk: [0-9.]*' "$dir/log" | awk '{print $5}' | tail -1)
    local keys
    keys=$(redis-cli -p "$port" dbsize)
    [ "$keys" = "$total_keys" ] || { echo "$name loaded $keys keys, expected $total_keys" >&2; exit 1; }
    local t0 t1
    t0=$(date +%s.%N); redis-cli -p "$port" save >/dev/null; t1=$(date +%s.%N)
    size=$(stat -c %s "$dir/dump.rdb")
    best_load=$(echo "if ($load < $best_load) $load else $best_load" | bc)
    best_save=$(echo "s=$t1 - $t0; if (s < $best_save) s else $best_save" | bc)
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    wait "$pid" 2>/dev/null || true
  done
  echo "$best_load $best_save $size"
}
read -r r_load r_save r_size < <(measure redoubt)
read -r s_load s_save s_size < <(measure redis)
echo "redoubt load=$r_load save=$r_save size=$r_size"
echo "redis   load=$s_load save=$s_save size=$s_size"

python3 - "$OUT" "$KEYS" "$SIZE" "$COLLECTIONS" "$total_keys" "$dump_bytes" "$r_load" "$s_load" "$r_save" "$s_save" "$r_size" "$s_size" <<'EOF'
import sys, re
out, keys, size, coll, total, dump_bytes = sys.argv[1:7]
rl, sl, rs, ss, rz, sz = map(float, sys.argv[7:])
block = "\n".join([
 "<!-- rdb:start -->",
 "## RDB: start-up load, SAVE, file size",
 "",
 f"`KEYS={keys} SIZE={size} COLLECTIONS={coll} bench/rdb.sh` — one dump made by Redis 7.0.15: {keys} strings of {size} bytes "
 f"plus {coll} each of small hashes, lists, int sets, sets, sorted sets, {int(coll)//20} streams and a few big collections "
 f"({total} keys, {int(dump_bytes)/2**20:.0f} MiB). Load time is each server's own 'DB loaded from disk' figure, SAVE is timed "
 "around the command; best of the runs; server pinned to core 0.",
 "",
 "| measure | Redoubt | Redis 7.0.15 | speed-up / ratio |",
 "|---|---|---|---|",
 f"| start-up load (s) | {rl:.2f} | {sl:.2f} | {sl/rl:.2f}x faster |",
 f"| SAVE (s) | {rs:.2f} | {ss:.2f} | {ss/rs:.2f}x faster |",
 f"| file size (bytes) | {rz:.0f} | {sz:.0f} | {rz/sz:.3f} of Redis's |",
 "<!-- rdb:end -->",
])
try:
    text = open(out).read()
except FileNotFoundError:
    text = "# Benchmarks\n"
if "<!-- rdb:start -->" in text:
    text = re.sub(r"<!-- rdb:start -->.*<!-- rdb:end -->", block, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + block + "\n"
open(out, "w").write(text)
print(block)
EOF
