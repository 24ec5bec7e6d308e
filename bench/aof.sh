#!/usr/bin/env bash
# AOF write path and load time, Redoubt and Redis 7.0.15 side by side in one
# run:
#   1. redis-benchmark SET -c 50 at -P 1 and -P 16, under appendfsync
#      everysec and always (server pinned to one core, client to another);
#   2. start-up load time of a large multi-part AOF (the same files for both:
#      an empty base and one incr of $LOAD_CMDS SET commands).
# Results go to BENCHMARKS.md between the aof.sh markers.
#
#   N1=50000 N16=300000 LOAD_CMDS=1000000 bench/aof.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${N1:-50000}
N16=${N16:-300000}
LOAD_CMDS=${LOAD_CMDS:-1000000}
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
OUT=${OUT:-BENCHMARKS.md}

command -v redis-server >/dev/null || { echo "redis-server not found"; exit 1; }
cargo build --release -q -p redoubt-server
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/redoubt-server
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # name dir port [args...]
  local name=$1 dir=$2 port=$3; shift 3
  if [ "$name" = redoubt ]; then
    taskset -c "$SERVER_CORE" "$BIN" --port "$port" --dir "$dir" --save '' "$@" >"$dir/log" 2>&1 &
  else
    taskset -c "$SERVER_CORE" redis-server --port "$port" --dir "$dir" --save '' --daemonize no "$@" >"$dir/log" 2>&1 &
  fi
  echo $!
}

wait_up() { until redis-cli -p "$1" ping 2>/dev/null | grep -q PONG; do sleep 0.01; done; }
stop() { redis-cli -p "$1" shutdown nosave >/dev/null 2>&1 || true; wait "$2" 2>/dev/null || true; }

# "rps p50 p99" for SET at pipeline $2 with $3 requests.
setload() {
  taskset -c "$CLIENT_CORE" redis-benchmark -p "$1" -t set -r 100000 -d 64 -c 50 -P "$2" -n "$3" --csv 2>/dev/null |
    awk -F'"' '/^"SET"/ {print $4, $8, $14}'
}

declare -A R
for fsync in everysec always; do
  for name in redoubt redis; do
    for p in 1 16; do
      dir=$WORK/$name-$fsync-$p; mkdir -p "$dir"; port=$(free_port)
      pid=$(start "$name" "$dir" "$port" --appendonly yes --appendfsync "$fsync" --aof-use-rdb-preamble no)
      wait_up "$port"
      n=$N1; [ "$p" = 16 ] && n=$N16
      R[$name-$fsync-$p]=$(setload "$port" "$p" "$n")
      echo "$name appendfsync=$fsync -P $p: ${R[$name-$fsync-$p]}" >&2
      stop "$port" "$pid"
    done
  done
done

# A large AOF both servers load.
gen=$WORK/gen; mkdir -p "$gen/appendonlydir"
python3 - "$gen/appendonlydir" "$LOAD_CMDS" <<'PY'
import sys
d, n = sys.argv[1], int(sys.argv[2])
open(f"{d}/appendonly.aof.1.base.aof", "wb").close()
with open(f"{d}/appendonly.aof.1.incr.aof", "wb") as f:
    f.write(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n")
    chunk = []
    for i in range(n):
        k = b"key:%d" % (i % (n // 2 + 1))
        v = b"value-%012d" % i
        chunk.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
        if len(chunk) == 10000:
            f.write(b"".join(chunk)); chunk = []
    f.write(b"".join(chunk))
with open(f"{d}/appendonly.aof.manifest", "w") as f:
    f.write("file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n")
PY
AOF_BYTES=$(stat -c %s "$gen/appendonlydir/appendonly.aof.1.incr.aof")
declare -A L
for name in redoubt redis; do
  dir=$WORK/load-$name; cp -r "$gen" "$dir"; port=$(free_port)
  t0=$(date +%s.%N)
  pid=$(start "$name" "$dir" "$port" --appendonly yes)
  wait_up "$port"
  t1=$(date +%s.%N)
  keys=$(redis-cli -p "$port" dbsize)
  L[$name]="$(python3 -c "print(f'{$t1-$t0:.2f}')") $keys"
  echo "$name load: ${L[$name]}" >&2
  stop "$port" "$pid"
done

row() { # label key
  local a=(${R[redoubt-$2]}) b=(${R[redis-$2]})
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "${a[0]}" "${b[0]}" "${a[1]}" "${b[1]}" "${a[2]}" "${b[2]}"
}
{
  echo "<!-- aof.sh begin -->"
  echo "## AOF (bench/aof.sh)"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), server on core $SERVER_CORE, redis-benchmark on core $CLIENT_CORE;"
  echo "Redoubt $(git rev-parse --short HEAD) vs $(redis-server --version | awk '{print $3}' | tr -d v=). SET, 64-byte values, 100k random keys, 50 clients;"
  echo "-P 1: $N1 requests, -P 16: $N16 requests. Both servers acknowledge a write only after write() (everysec) or fdatasync (always)."
  echo
  echo "| appendfsync, pipeline | Redoubt rps | Redis rps | Redoubt p50 ms | Redis p50 ms | Redoubt p99 ms | Redis p99 ms |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  row "everysec, -P 1" everysec-1
  row "everysec, -P 16" everysec-16
  row "always, -P 1" always-1
  row "always, -P 16" always-16
  echo
  a=(${L[redoubt]}) b=(${L[redis]})
  echo "AOF load at start-up ($LOAD_CMDS SET commands, $AOF_BYTES bytes, start to first PONG): Redoubt ${a[0]} s (${a[1]} keys), Redis ${b[0]} s (${b[1]} keys)."
  echo "<!-- aof.sh end -->"
} >"$WORK/section.md"

touch "$OUT"
python3 - "$OUT" "$WORK/section.md" <<'PY'
import sys, re
out, sec = sys.argv[1], open(sys.argv[2]).read()
s = open(out).read()
pat = re.compile(r"<!-- aof.sh begin -->.*?<!-- aof.sh end -->\n?", re.S)
s = pat.sub(lambda m: sec, s) if pat.search(s) else (s.rstrip("\n") + ("\n\n" if s.strip() else "") + sec)
open(out, "w").write(s)
PY
cat "$WORK/section.md"
