#!/usr/bin/env bash
# Offline tools against their Redis / rdbtools counterparts, side by side in
# one run, on files made by a real Redis 7.0.15:
#   1. dump.rdb: DEBUG POPULATE $KEYS key 256 plus collections ($COLL each of
#      hashes, lists, sets, zsets of 100 elements, and 100 streams);
#      `rdb-dump check` vs `redis-check-rdb`;
#   2. `rdb-dump json` vs rdbtools `rdb --command json`: stock rdbtools
#      refuses RDB v10 (recorded); both are then timed on a v9 file: the
#      strings-only dump (a v10 string-only dump is byte-identical to v9
#      apart from the header) with its header set to REDIS0009 and its CRC to
#      0 (= "not computed");
#   3. an AOF of the same dataset (BGREWRITEAOF with aof-use-rdb-preamble
#      no: a RESP base file); `aof-check` vs `redis-check-aof`.
# Each measurement: wall seconds and peak RSS (GNU time), best of $RUNS.
# Results go to BENCHMARKS.md between the tools markers.
#
#   KEYS=2000000 COLL=2000 RUNS=2 bench/tools.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-2000000}
COLL=${COLL:-2000}
RUNS=${RUNS:-2}
OUT=${OUT:-BENCHMARKS.md}

for t in redis-server redis-cli redis-check-rdb redis-check-aof python3; do
  command -v "$t" >/dev/null || { echo "$t not found"; exit 1; }
done
[ -x /usr/bin/time ] || { echo "/usr/bin/time (GNU time) not found"; exit 1; }
cargo build --release -q -p redoubt-tools
TD=${CARGO_TARGET_DIR:-$PWD/target}/release
RDB_DUMP=$TD/rdb-dump
AOF_CHECK=$TD/aof-check
WORK=$(mktemp -d)
PID=""
trap 'if [ -n "$PID" ]; then redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || kill "$PID" 2>/dev/null || true; fi; rm -rf "$WORK"' EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cli() { redis-cli -p "$PORT" "$@"; }
redis-server --port "$PORT" --bind 127.0.0.1 --dir "$WORK" --save '' --appendonly no \
  --enable-debug-command yes --daemonize no --logfile "$WORK/redis.log" &
PID=$!
until cli ping 2>/dev/null | grep -q PONG; do sleep 0.05; done
REDIS_VER=$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')

echo "populating $KEYS strings..." >&2
cli DEBUG POPULATE "$KEYS" key 256 >/dev/null
cli SAVE >/dev/null
mv "$WORK/dump.rdb" "$WORK/strings.rdb"
echo "adding collections..." >&2
python3 - "$COLL" >"$WORK/coll.resp" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout.buffer
def cmd(*a):
    out.write(b"*%d\r\n" % len(a))
    for x in a:
        x = x if isinstance(x, bytes) else str(x).encode()
        out.write(b"$%d\r\n%s\r\n" % (len(x), x))
for i in range(n):
    cmd("HSET", f"hash:{i}", *[v for j in range(100) for v in (f"field:{j}", f"value:{i}:{j}")])
    cmd("RPUSH", f"list:{i}", *[f"item:{i}:{j}" for j in range(100)])
    cmd("SADD", f"set:{i}", *[f"member:{j}" for j in range(100)])
    cmd("ZADD", f"zset:{i}", *[v for j in range(100) for v in (j * 1.5, f"m:{j}")])
for i in range(100):
    for j in range(1, 101):
        cmd("XADD", f"stream:{i}", f"{j}-1", "field", f"value-{j}", "n", j)
    cmd("XGROUP", "CREATE", f"stream:{i}", "g", "0")
PY
cli --pipe <"$WORK/coll.resp" >/dev/null
cli SAVE >/dev/null
echo "writing the AOF..." >&2
cli CONFIG SET aof-use-rdb-preamble no >/dev/null
cli CONFIG SET appendonly yes >/dev/null
until [ -d "$WORK/appendonlydir" ] && cli INFO persistence | grep -q 'aof_rewrite_in_progress:0' \
  && ls "$WORK"/appendonlydir/*.base.aof >/dev/null 2>&1; do sleep 0.2; done
sleep 1
AOF=$(ls "$WORK"/appendonlydir/*.base.aof)
NKEYS=$(cli DBSIZE)
cli SHUTDOWN NOSAVE >/dev/null 2>&1 || true
wait "$PID" 2>/dev/null || true
PID=""

# v9 copy of the strings-only dump for rdbtools.
cp "$WORK/strings.rdb" "$WORK/v9.rdb"
python3 - "$WORK/v9.rdb" <<'PY'
import os, sys
p = sys.argv[1]
with open(p, "r+b") as f:
    f.write(b"REDIS0009")
    f.seek(os.path.getsize(p) - 8)
    f.write(b"\0" * 8)
PY

# measure NAME CMD... : best wall time of $RUNS, with its peak RSS; "fail"
# when the command exits non-zero. Output of the command is discarded.
declare -A T M
measure() {
  local name=$1; shift
  local best="" rss="" rc=0
  for _ in $(seq "$RUNS"); do
    if /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err"; then
      read -r s k <"$WORK/time"
      if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $s < $best else 1)"; then best=$s; rss=$k; fi
    else
      rc=1
      tail -n 3 "$WORK/err" >"$WORK/err.$name"
      break
    fi
  done
  if [ $rc = 0 ]; then T[$name]=$best; M[$name]=$rss; else T[$name]=fail; M[$name]=-; fi
  echo "$name: ${T[$name]} s, ${M[$name]} KiB" >&2
}

measure rdbcheck_ours "$RDB_DUMP" check "$WORK/dump.rdb"
measure rdbcheck_redis redis-check-rdb "$WORK/dump.rdb"
measure json_ours "$RDB_DUMP" json "$WORK/dump.rdb"
if command -v rdb >/dev/null; then
  measure json_rdbtools_v10 rdb --command json "$WORK/dump.rdb"
  RDBTOOLS_ERR=$(tr '\n' ' ' <"$WORK/err.json_rdbtools_v10" 2>/dev/null | grep -oE "Invalid RDB version number [0-9]+" | head -n 1 || true)
  measure json9_ours "$RDB_DUMP" json "$WORK/v9.rdb"
  measure json9_rdbtools rdb --command json "$WORK/v9.rdb"
else
  T[json_rdbtools_v10]="not installed"; T[json9_ours]=-; T[json9_rdbtools]="not installed"
  M[json_rdbtools_v10]=-; M[json9_ours]=-; M[json9_rdbtools]=-
  RDBTOOLS_ERR="rdbtools not installed (pip install rdbtools python-lzf)"
fi
measure aofcheck_ours "$AOF_CHECK" "$AOF"
measure aofcheck_redis redis-check-aof "$AOF"

ratio() { # theirs ours
  python3 -c "import sys
a, b = sys.argv[1], sys.argv[2]
try: print('%.2fx' % (float(a) / float(b)))
except ValueError: print('-')" "$1" "$2"
}
size() { python3 -c "import os,sys; print('%.0f MB' % (os.path.getsize(sys.argv[1]) / 1e6))" "$1"; }

SECTION=$(cat <<EOF
<!-- tools:start -->
## Offline tools (bench/tools.sh)

$(date -u +%Y-%m-%d), $(nproc) cores shared, Redis $REDIS_VER, rdbtools $(python3 -c 'import importlib.metadata as m; print(m.version("rdbtools"))' 2>/dev/null || echo "-").
Dataset: \`DEBUG POPULATE $KEYS key 256\` plus $COLL each of 100-element hashes,
lists, sets and zsets and 100 streams of 100 entries with a group: $NKEYS keys.
dump.rdb $(size "$WORK/dump.rdb") (RDB v10, written by Redis); AOF base (RESP, from
BGREWRITEAOF without preamble) $(size "$AOF"); v9 strings-only copy $(size "$WORK/v9.rdb").
Wall time best of $RUNS, peak RSS from GNU time; speed-up = theirs / ours.

| task | ours | theirs | speed-up | RSS ours / theirs |
|---|---|---|---|---|
| check dump.rdb: \`rdb-dump check\` vs \`redis-check-rdb\` | ${T[rdbcheck_ours]} s | ${T[rdbcheck_redis]} s | $(ratio "${T[rdbcheck_redis]}" "${T[rdbcheck_ours]}") | ${M[rdbcheck_ours]} / ${M[rdbcheck_redis]} KiB |
| JSON of dump.rdb (v10): \`rdb-dump json\` vs \`rdb --command json\` | ${T[json_ours]} s | ${T[json_rdbtools_v10]} | - | ${M[json_ours]} KiB / - |
| JSON of the v9 copy: \`rdb-dump json\` vs \`rdb --command json\` | ${T[json9_ours]} s | ${T[json9_rdbtools]} s | $(ratio "${T[json9_rdbtools]}" "${T[json9_ours]}") | ${M[json9_ours]} / ${M[json9_rdbtools]} KiB |
| check the AOF: \`aof-check\` vs \`redis-check-aof\` | ${T[aofcheck_ours]} s | ${T[aofcheck_redis]} s | $(ratio "${T[aofcheck_redis]}" "${T[aofcheck_ours]}") | ${M[aofcheck_ours]} / ${M[aofcheck_redis]} KiB |

Stock rdbtools on the v10 dump: ${RDBTOOLS_ERR:-see above} (it only reads RDB versions 1-9),
so the JSON comparison uses the v9 copy (strings only: the collections of the
full dump are v10 encodings rdbtools cannot read either).
Targets: check >= 1.0x redis-check-rdb, json >= 20x rdbtools, aof-check >= 1.0x redis-check-aof.
aof-check gathers its --stats data (a set of every key touched) only when --stats is given.
<!-- tools:end -->
EOF
)

python3 - "$OUT" "$SECTION" <<'PY'
import os, re, sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
pat = re.compile(r"<!-- tools:start -->.*?<!-- tools:end -->", re.S)
if pat.search(text):
    text = pat.sub(lambda m: section, text)
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
echo "wrote the tools section of $OUT" >&2
