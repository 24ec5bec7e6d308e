#!/usr/bin/env bash
# User-space instructions per request of Redoubt and Redis 7, counted by
# valgrind's callgrind: a figure that other load on the machine does not
# move, for judging changes on the request path where requests per second
# are too noisy. Kernel work (the socket calls, the same count for both
# servers) is not counted. Writes a Markdown section into BENCHMARKS.md
# between the markers below.
#
#   bench/instructions.sh                    # set,get,incr,xadd at -P 1 and -P 16
#   TESTS=get PIPELINES=1 bench/instructions.sh
#   CACHE_SIM=1 TESTS=sadd PIPELINES=16 WARMUP=1500000 bench/instructions.sh
#   AOF=everysec TESTS=set OUT=/tmp/b.md bench/instructions.sh
#   KEEP=/tmp/prof TESTS=hset PIPELINES=1 bench/instructions.sh  # keep profiles
#
# AOF=always|everysec|no runs both servers with appendonly yes and that
# appendfsync (default: persistence off).
# CACHE_SIM=1 also simulates the caches (callgrind --cache-sim=yes, sized
# as the host's) and reports last-level cache misses per request: for
# commands on big collections the misses, not the instructions, set the
# cost, and the simulation counts them without the noise of a loaded
# machine. A large WARMUP grows the collection the test writes to (lpush,
# sadd, hset, zadd write one key) to the size a long benchmark reaches.
#
# Each server runs under callgrind; redis-benchmark sends WARMUP requests,
# the counters are zeroed, N requests run, the counters are dumped.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TESTS=${TESTS:-set,get,incr,xadd}
PIPELINES=${PIPELINES:-1 16}
N=${N:-20000}
WARMUP=${WARMUP:-5000}
CLIENTS=${CLIENTS:-50}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
CACHE_SIM=${CACHE_SIM:-0}
AOF=${AOF:-}
case "$AOF" in
    "") PERSIST=(--appendonly no) PERSIST_DESC="persistence off" ;;
    always | everysec | no)
        PERSIST=(--appendonly yes --appendfsync "$AOF")
        PERSIST_DESC="AOF on (appendfsync $AOF), no RDB"
        ;;
    *) echo "AOF must be always, everysec or no" >&2; exit 1 ;;
esac
WITH_REDIS=${WITH_REDIS:-1} # 0: Redoubt only (before/after runs of one build)
REDIS_SERVER=${REDIS_SERVER:-redis-server}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

# A run with AOF on has a section of its own.
BEGIN_MARK="<!-- BEGIN bench/instructions.sh${AOF:+ AOF=$AOF} (generated; edits inside are overwritten) -->"
END_MARK="<!-- END bench/instructions.sh${AOF:+ AOF=$AOF} -->"

for tool in valgrind callgrind_control redis-cli redis-benchmark "$REDIS_SERVER"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

# REDOUBT_BIN=path measures that binary as it is (say, a build of another
# commit, for a before/after comparison) instead of building this tree.
BIN_NOTE=""
if [ -n "${REDOUBT_BIN:-}" ]; then
    BIN_NOTE=" (Redoubt: the binary \`$REDOUBT_BIN\`, not necessarily built from it)"
else
    echo "building redoubt-server (release)..." >&2
    (cd "$ROOT" && cargo build --release -p redoubt-server --quiet)
    REDOUBT_BIN=$CARGO_TARGET_DIR/release/redoubt-server
fi

WORK=$(mktemp -d /tmp/redoubt-instr.XXXXXX)
PID=""
cleanup() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# load PORT TEST PIPELINE REQUESTS
load() {
    local what=(-t "$2")
    # Redis 7.0's redis-benchmark has no xadd test (as bench/throughput.sh).
    [ "$2" = xadd ] && what=(XADD bench:stream MAXLEN '~' 1000000 '*' field value)
    redis-benchmark -h 127.0.0.1 -p "$1" -c "$CLIENTS" -r 1000000 -d 100 \
        -n "$4" -P "$3" -q "${what[@]}" >/dev/null
}

SIM_ARGS=()
[ "$CACHE_SIM" = 1 ] && SIM_ARGS=(--cache-sim=yes)
# SIM_LL=size,assoc,line (e.g. 2097152,16,64) simulates that cache as the
# last level instead of the host's: where the L3 is very large (hundreds of
# MiB on some servers) but slow, the misses that cost are those of the L2.
[ "$CACHE_SIM" = 1 ] && [ -n "${SIM_LL:-}" ] && SIM_ARGS+=(--LL="$SIM_LL")

# measure BINARY TEST PIPELINE [SERVER_ARGS...] -> "instructions LL-misses"
# per request (the misses are n/a without CACHE_SIM=1)
measure() {
    local bin=$1 t=$2 p=$3 port dir out
    shift 3
    port=$(free_port)
    dir=$WORK/run.$RANDOM
    mkdir -p "$dir"
    valgrind --tool=callgrind "${SIM_ARGS[@]}" --callgrind-out-file="$dir/cg.out" \
        "$bin" --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' "${PERSIST[@]}" "$@" \
        >"$dir/log" 2>&1 &
    PID=$!
    for _ in $(seq 1 300); do
        redis-cli -p "$port" PING >/dev/null 2>&1 && break
        sleep 0.1
    done
    load "$port" "$t" "$p" "$WARMUP"
    callgrind_control -z "$PID" >/dev/null
    load "$port" "$t" "$p" "$N"
    callgrind_control -d "$PID" >/dev/null
    sleep 0.5
    # The dump taken after zeroing (the server writes another at exit).
    out=$(ls -t "$dir"/cg.out* | head -1)
    cp "$out" "$dir/counted"
    # KEEP=dir keeps each counted profile, for callgrind_annotate.
    if [ -n "${KEEP:-}" ]; then
        mkdir -p "$KEEP"
        cp "$out" "$KEEP/$(basename "$bin").$t.P$p.cg"
    fi
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
    out=$dir/counted
    # The events line names the columns of the totals line.
    awk -v n="$N" '
        /^events:/ { for (i = 2; i <= NF; i++) col[$i] = i }
        /^(summary|totals):/ {
            ir = $(col["Ir"]) / n
            if ("DLmr" in col) {
                printf "%.0f %.2f\n", ir, ($(col["ILmr"]) + $(col["DLmr"]) + $(col["DLmw"])) / n
            } else {
                printf "%.0f n/a\n", ir
            }
            exit
        }' "$out"
}

ROWS=""
for p in $PIPELINES; do
    for t in ${TESTS//,/ }; do
        echo "-P $p $t: redoubt..." >&2
        # Without the busy poll (see server/src/busy_poll.rs): its turns
        # through an idle event loop would count as work per request.
        read -r a am < <(measure "$REDOUBT_BIN" "$t" "$p" --busy-poll-us 0)
        echo "-P $p $t: redoubt: $a instructions, $am LL misses per request" >&2
        b=n/a bm=n/a
        if [ "$WITH_REDIS" = 1 ]; then
            echo "-P $p $t: redis..." >&2
            read -r b bm < <(measure "$(command -v "$REDIS_SERVER")" "$t" "$p")
            echo "-P $p $t: redis: $b instructions, $bm LL misses per request" >&2
        fi
        r=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }')
        if [ "$CACHE_SIM" = 1 ]; then
            ROWS+="| $t | $p | $a | $b | $r | $am | $bm |"$'\n'
        else
            ROWS+="| $t | $p | $a | $b | $r |"$'\n'
        fi
    done
done

HEADER='| test | -P | Redoubt | Redis | ratio |
| --- | --- | --- | --- | --- |'
SIM_NOTE=""
LL_DESC="as the host's"
[ -n "${SIM_LL:-}" ] && LL_DESC="--LL=$SIM_LL"
if [ "$CACHE_SIM" = 1 ]; then
    HEADER='| test | -P | Redoubt | Redis | ratio | LL misses Redoubt | LL misses Redis |
| --- | --- | --- | --- | --- | --- | --- |'
    SIM_NOTE="
Caches simulated (callgrind --cache-sim=yes, last level $LL_DESC):
LL misses are last-level cache misses per request, instruction and data."
fi
REDIS_VERSION=$("$REDIS_SERVER" --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
SECTION=$(cat <<EOF
$BEGIN_MARK
## User-space instructions per request: Redoubt vs Redis $REDIS_VERSION

Generated by \`bench/instructions.sh\` on $(date -u +%Y-%m-%d) at commit \`$REV\`$BIN_NOTE.
Each server under valgrind's callgrind, $PERSIST_DESC (Redoubt with
\`--busy-poll-us 0\`: the polling turns of its event loop are not work per
request); \`redis-benchmark
-c $CLIENTS -r 1000000 -d 100\`, $WARMUP requests of warm-up, then $N counted.
Instructions executed in user space per request (the kernel's socket work
is not counted): unlike requests per second, load on the machine does not
move these. Ratio = Redoubt / Redis (lower is better for Redoubt).$SIM_NOTE

${HEADER}
${ROWS%$'\n'}
$END_MARK
EOF
)

if [ -f "$OUT" ] && grep -qF "$BEGIN_MARK" "$OUT"; then
    SECTION="$SECTION" awk -v begin="$BEGIN_MARK" -v end="$END_MARK" '
        $0 == begin { print ENVIRON["SECTION"]; skip = 1; next }
        $0 == end { skip = 0; next }
        !skip { print }
    ' "$OUT" >"$OUT.tmp"
    mv "$OUT.tmp" "$OUT"
else
    [ -f "$OUT" ] || printf '# Benchmarks\n\n' >"$OUT"
    printf '\n%s\n' "$SECTION" >>"$OUT"
fi
echo "$SECTION"
echo "written to $OUT" >&2
