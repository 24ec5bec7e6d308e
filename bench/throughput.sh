#!/usr/bin/env bash
# Throughput, latency and memory of Redoubt next to Redis 7, on one machine,
# in one run. Writes a Markdown section into BENCHMARKS.md (between the
# markers below), keeping every other section of that file.
#
#   bench/throughput.sh                 # defaults (about 10 s per test)
#   N=200000 bench/throughput.sh        # quicker
#   EXTRA_TESTS=families bench/throughput.sh   # + lpush,rpop,sadd,hset,zadd,lrange_100,xadd
#
# Both servers run with persistence off (--save '' --appendonly no), pinned
# to CPU $SERVER_CPU; redis-benchmark is pinned to CPU $BENCH_CPU. Each
# (test, pipeline depth) runs against Redoubt and then Redis, back to back,
# $ROUNDS_P1 times in alternation at -P 1 (A B A B ...; $ROUNDS_PN times at
# deeper pipelines), and the median run of each server is reported with
# the spread of its runs: one noisy spell of a shared machine then moves
# one run, not the ratio. Each round's own ratio goes to stderr, and their
# median is the table's "paired" column.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-1000000}                       # requests per test at -P 1
N_PIPELINED=${N_PIPELINED:-$((N * 5))} # requests per test at -P 16
TESTS=${TESTS:-set,get,incr}
# Tests of the list/set/hash/zset/stream commands: EXTRA_TESTS=families
# runs all of them, or list the ones wanted. The redis-benchmark of Redis 7.0
# has no xadd test, so xadd runs the command
# `XADD bench:stream MAXLEN ~ 1000000 * field value` (auto ids; the cap keeps
# memory bounded over the pipelined run), on an emptied stream each time.
FAMILY_TESTS=lpush,rpop,sadd,hset,zadd,lrange_100,xadd
EXTRA_TESTS=${EXTRA_TESTS:-}
[ "$EXTRA_TESTS" = families ] && EXTRA_TESTS=$FAMILY_TESTS
PIPELINES=${PIPELINES:-1 16}
ROUNDS_P1=${ROUNDS_P1:-3}   # alternating runs per server at -P 1
ROUNDS_PN=${ROUNDS_PN:-1}   # ... and at deeper pipelines
CLIENTS=${CLIENTS:-50}
KEYSPACE=${KEYSPACE:-1000000}
SIZE=${SIZE:-100}
RSS_KEYS=${RSS_KEYS:-1000000}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

BEGIN_MARK='<!-- BEGIN bench/throughput.sh (generated; edits inside are overwritten) -->'
END_MARK='<!-- END bench/throughput.sh -->'

TIME_BIN=${TIME_BIN:-/usr/bin/time} # GNU time, for the client's CPU time
for tool in "$REDIS_SERVER" "$REDIS_CLI" "$REDIS_BENCHMARK" taskset "$TIME_BIN"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

echo "building redoubt-server (release)..." >&2
(cd "$ROOT" && cargo build --release -p redoubt-server --quiet)
REDOUBT_BIN=$CARGO_TARGET_DIR/release/redoubt-server

WORK=$(mktemp -d /tmp/redoubt-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start NAME BINARY EXTRA_ARGS... ; sets PORT_<NAME> and PID_<NAME>
start() {
    local name=$1 bin=$2
    shift 2
    local port dir
    port=$(free_port)
    dir=$WORK/$name
    mkdir -p "$dir"
    taskset -c "$SERVER_CPU" "$bin" --port "$port" --bind 127.0.0.1 --dir "$dir" \
        --save '' --appendonly no --enable-debug-command yes "$@" \
        >"$dir/server.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 200); do
        if "$REDIS_CLI" -p "$port" PING >/dev/null 2>&1; then
            printf -v "PORT_$name" '%s' "$port"
            printf -v "PID_$name" '%s' "$pid"
            return 0
        fi
        sleep 0.05
    done
    echo "$name did not start; log:" >&2
    cat "$dir/server.log" >&2
    exit 1
}

start redoubt "$REDOUBT_BIN"
start redis "$(command -v "$REDIS_SERVER")" --daemonize no --logfile ''

# CPU time (user + system, in clock ticks) a process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK_HZ=$(getconf CLK_TCK)

# Server CPU microseconds per request (for lrange_100 this includes the
# LPUSH that redis-benchmark runs first): less sensitive than requests/s to
# other load on the machine (it counts the server's own work only).
cpu_per_req() {
    awk -v a="$1" -v b="$2" -v n="$3" -v hz="$TICK_HZ" \
        'BEGIN { if (n > 0) printf "%.2f", (b - a) * 1e6 / hz / n; else print "n/a" }'
}

# The client's own CPU time per request, in µs, from the time(1) output
# in FILE ("user system" in seconds) for REQUESTS: at -P 1 redis-benchmark
# is often the busier side, so the rate follows its cost per request, which
# the server's reply pattern can change.
client_per_req() {
    awk -v n="$2" '{ if (n > 0) printf "%.2f", ($1 + $2) * 1e6 / n; else print "n/a" }' "$1"
}

# bench PORT TEST PIPELINE REQUESTS -> "rps p50 p99" (the client's CPU time
# goes to $WORK/client.time)
bench() {
    local port=$1 test=$2 pipeline=$3 n=$4
    local what=(-t "$test")
    if [ "$test" = xadd ]; then
        "$REDIS_CLI" -p "$port" DEL bench:stream >/dev/null
        what=(XADD bench:stream MAXLEN '~' 1000000 '*' field value)
    fi
    "$TIME_BIN" -f '%U %S' -o "$WORK/client.time" \
        taskset -c "$BENCH_CPU" "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$port" \
        -c "$CLIENTS" -r "$KEYSPACE" -d "$SIZE" -n "$n" -P "$pipeline" --csv --precision 3 \
        "${what[@]}" |
        awk -F, '
            # The last row is the test itself (lrange_100 first runs LPUSH;
            # a custom command has one row).
            NR > 1 { gsub(/"/, ""); last = $2 " " $5 " " $7 }
            END { print (last == "" ? "0 n/a n/a" : last) }'
}

# A rate as an integer, or n/a when redis-benchmark has no such test.
rate() { awk -v r="$1" 'BEGIN { if (r > 0) printf "%.0f", r; else print "n/a" }'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# median VALUES... (numbers; n/a when there are none)
median() {
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The median of VALUES to two decimals (ratios).
median2() { median "$@" | awk '/^[0-9.]+$/ { printf "%.2f", $1; next } { print }'; }

# The spread of VALUES as "min-max" (integers), or "-" for a single run.
spread() {
    [ $# -le 1 ] && { echo "-"; return; }
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g |
        awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR == 0) print "n/a"; else printf "%.0f-%.0f", lo, hi }'
}

# run_one NAME TEST PIPELINE REQUESTS: one run against one server; appends
# to the RPS_/P50_/P99_/CPU_/CLI_<NAME> arrays.
run_one() {
    local name=$1 t=$2 p=$3 n=$4 t0 rps p50 p99
    local port_var=PORT_$name pid_var=PID_$name
    local -n rps_out=RPS_$name p50_out=P50_$name p99_out=P99_$name cpu_out=CPU_$name \
        cli_out=CLI_$name
    t0=$(cpu_ticks "${!pid_var}")
    read -r rps p50 p99 < <(bench "${!port_var}" "$t" "$p" "$n")
    rps_out+=("$rps")
    p50_out+=("$p50")
    p99_out+=("$p99")
    cpu_out+=("$(cpu_per_req "$t0" "$(cpu_ticks "${!pid_var}")" "$n")")
    cli_out+=("$(client_per_req "$WORK/client.time" "$n")")
}

ALL_TESTS=$TESTS
[ -n "$EXTRA_TESTS" ] && ALL_TESTS="$TESTS,$EXTRA_TESTS"
ROWS=""
for p in $PIPELINES; do
    n=$N
    rounds=$ROUNDS_P1
    if [ "$p" -gt 1 ]; then
        n=$N_PIPELINED
        rounds=$ROUNDS_PN
    fi
    for t in ${ALL_TESTS//,/ }; do
        RPS_redoubt=() P50_redoubt=() P99_redoubt=() CPU_redoubt=() CLI_redoubt=()
        RPS_redis=() P50_redis=() P99_redis=() CPU_redis=() CLI_redis=()
        PAIRED=()
        for r in $(seq 1 "$rounds"); do
            echo "-P $p $t (round $r/$rounds): redoubt..." >&2
            run_one redoubt "$t" "$p" "$n"
            echo "-P $p $t (round $r/$rounds): redis..." >&2
            run_one redis "$t" "$p" "$n"
            PAIRED+=("$(ratio "${RPS_redoubt[-1]}" "${RPS_redis[-1]}")")
            echo "-P $p $t (round $r/$rounds): redoubt ${RPS_redoubt[-1]} req/s (client ${CLI_redoubt[-1]} µs/req), redis ${RPS_redis[-1]} req/s (client ${CLI_redis[-1]} µs/req), ratio ${PAIRED[-1]}" >&2
        done
        a_rps=$(median "${RPS_redoubt[@]}")
        b_rps=$(median "${RPS_redis[@]}")
        ROWS+="| $t | $p | $(rate "$a_rps") | $(spread "${RPS_redoubt[@]}") | $(rate "$b_rps") | $(spread "${RPS_redis[@]}") | **$(ratio "$a_rps" "$b_rps")** | $(median2 "${PAIRED[@]}") | $(median "${P50_redoubt[@]}") | $(median "${P50_redis[@]}") | $(median "${P99_redoubt[@]}") | $(median "${P99_redis[@]}") | $(median "${CPU_redoubt[@]}") | $(median "${CPU_redis[@]}") | $(median "${CLI_redoubt[@]}") | $(median "${CLI_redis[@]}") |"$'\n'
    done
done

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

echo "memory: DEBUG POPULATE $RSS_KEYS key $SIZE on fresh servers..." >&2
for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done
PIDS=()
start redoubt "$REDOUBT_BIN"
start redis "$(command -v "$REDIS_SERVER")" --daemonize no --logfile ''
declare -A RSS_EMPTY RSS_FULL KEYS_LOADED
for name in redoubt redis; do
    port_var=PORT_$name
    pid_var=PID_$name
    sleep 1
    RSS_EMPTY[$name]=$(rss_kib "${!pid_var}")
    "$REDIS_CLI" -p "${!port_var}" DEBUG POPULATE "$RSS_KEYS" key "$SIZE" >/dev/null
    sleep 1
    RSS_FULL[$name]=$(rss_kib "${!pid_var}")
    KEYS_LOADED[$name]=$("$REDIS_CLI" -p "${!port_var}" DBSIZE)
done
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
per_key() { awk -v f="$1" -v e="$2" -v n="$3" 'BEGIN { printf "%.0f", (f - e) * 1024 / n }'; }

CPU_MODEL=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
REDIS_VERSION=$("$REDIS_SERVER" --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)

SECTION=$(cat <<EOF
$BEGIN_MARK
## Throughput and memory: Redoubt vs Redis $REDIS_VERSION

Generated by \`bench/throughput.sh\` on $(date -u +%Y-%m-%d) at commit \`$REV\`.
Machine: $CPU_MODEL, $(nproc) CPUs. Servers pinned to CPU $SERVER_CPU,
redis-benchmark to CPU $BENCH_CPU; persistence off on both
(\`--save '' --appendonly no\`). \`redis-benchmark -c $CLIENTS -r $KEYSPACE -d $SIZE\`,
$N requests per test at \`-P 1\` and $N_PIPELINED at deeper pipelines.
Each test ran $ROUNDS_P1 times per server at \`-P 1\` and $ROUNDS_PN at deeper
pipelines, alternating Redoubt and Redis run by run (the same method for
both); every figure is the median of a server's runs, and "spread" is the
lowest and highest requests per second among them. Latencies in ms.
Ratio = Redoubt / Redis median requests per second (higher is better for
Redoubt). Paired = the median of the rounds' own ratios (each Redoubt run
over the Redis run right after it): a slow spell of the machine that spans
both runs of a round moves it less. CPU = the server's own CPU time (user + system) per request in
µs, which other load on the machine disturbs less than requests per second.
Client CPU = redis-benchmark's CPU time per request in µs against each
server: where it is near the whole run's time (the client busy all along,
usual at \`-P 1\`), the client sets the rate.

| test | -P | Redoubt req/s | spread | Redis req/s | spread | ratio | paired | Redoubt p50 | Redis p50 | Redoubt p99 | Redis p99 | Redoubt CPU | Redis CPU | client CPU vs Redoubt | client CPU vs Redis |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${ROWS%$'\n'}

Memory of freshly started servers before and after
\`DEBUG POPULATE $RSS_KEYS key $SIZE\` ($RSS_KEYS keys, $SIZE-byte values):

| server | keys | RSS empty (MiB) | RSS loaded (MiB) | bytes per key |
| --- | --- | --- | --- | --- |
| Redoubt | ${KEYS_LOADED[redoubt]} | $(mib "${RSS_EMPTY[redoubt]}") | $(mib "${RSS_FULL[redoubt]}") | $(per_key "${RSS_FULL[redoubt]}" "${RSS_EMPTY[redoubt]}" "$RSS_KEYS") |
| Redis | ${KEYS_LOADED[redis]} | $(mib "${RSS_EMPTY[redis]}") | $(mib "${RSS_FULL[redis]}") | $(per_key "${RSS_FULL[redis]}" "${RSS_EMPTY[redis]}" "$RSS_KEYS") |

RSS ratio (loaded, Redoubt / Redis): **$(ratio "${RSS_FULL[redoubt]}" "${RSS_FULL[redis]}")**
$END_MARK
EOF
)

# Replace the generated section, or append it; other sections stay.
if [ -f "$OUT" ] && grep -qF "$BEGIN_MARK" "$OUT"; then
    SECTION="$SECTION" awk -v begin="$BEGIN_MARK" -v end="$END_MARK" '
        $0 == begin { print ENVIRON["SECTION"]; skip = 1; next }
        $0 == end { skip = 0; next }
        !skip { print }
    ' "$OUT" >"$OUT.tmp"
    mv "$OUT.tmp" "$OUT"
else
    if [ ! -f "$OUT" ]; then
        printf '# Benchmarks\n\n' >"$OUT"
    else
        printf '\n' >>"$OUT"
    fi
    printf '%s\n' "$SECTION" >>"$OUT"
fi
echo "$SECTION"
echo "written to $OUT" >&2
