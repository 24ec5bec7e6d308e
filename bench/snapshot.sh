#!/usr/bin/env bash
# BGSAVE under a sustained overwrite load, Redoubt and Redis 7.0.15 side by
# side in one run. For each server:
#   1. $KEYS keys of $SIZE bytes, named as redis-benchmark -r names them
#      (key:%012d), so the load below overwrites existing keys instead of
#      growing the dataset (DEBUG POPULATE's key:N names never match, and
#      the growth then showed up as "extra memory" of the save);
#   2. SET throughput and latency without a save (redis-benchmark, P16);
#   3. the same load with a BGSAVE in the middle: RSS sampled every 100 ms
#      (for Redis: the parent plus the child's Private_Dirty, i.e. its
#      copy-on-write), save duration, throughput, p99 and max latency;
#      the throughput during the save is the server's count of SET calls
#      (INFO commandstats) from the BGSAVE to its end over that time, less
#      the probe's SETs: redis-benchmark's own rate is that of its whole
#      run, which begins 2 s before the save and may end well after it;
#   steps 2 and 3 are repeated $ROUNDS times (default 3): rates, p99s and
#   save durations are the rounds' medians, stalls and max latencies the
#   worst of any round, memory that of the round with the largest share;
#   4. an idle BGSAVE.
# During both loads a probe (bench/stall_probe.py) sends one SET per ms on its
# own connection and reports the longest reply time and the longest gap
# between replies: redis-benchmark's histogram stops at 3 s, the probe does not.
# Meanwhile a real-time thread on each core (bench/freeze_watch.py) times the
# machine's own pauses of it, and the report gives the probe's longest reply
# both as it is and less the part of it that fell in such a pause.
# The server alone runs on SERVER_CORE: the load, the probe and every helper
# (memory sampler, INFO polls) run on CLIENT_CORE, and every other task that
# can run elsewhere is moved off SERVER_CORE for the run (bench/free_core.py).
# The save's own threads (Redoubt's encoder and writer, Redis's forked
# child) run on SAVE_CPUS, given to both servers as Redis's bgsave_cpulist
# and aof_rewrite_cpulist: by default the client's core, as an operator who
# pins a server keeps its save off the server's core; SAVE_CPUS= (empty)
# leaves them on the server's core, with its section of BENCHMARKS.md apart.
# Per-CPU kernel work stays: where the kernel has a connection-tracking
# table, its garbage collector scans it on the server's core (4-5 ms for
# 262,144 buckets); BENCHMARKS.md's notes say how the figures there were taken.
# With BIG=1 (the default) everything is done a second time with a
# 1,000,000-element zset and a 1,000,000-element list that two more clients
# keep writing (ZADD of random members, RPOPLPUSH) during both loads.
# Results go to BENCHMARKS.md between the snapshot markers.
# MODE=bgrewriteaof does the same with appendonly yes (everysec) and a
# BGREWRITEAOF instead of the BGSAVE (its own section of BENCHMARKS.md).
#
#   KEYS=2000000 SIZE=256 REQUESTS=14000000 bench/snapshot.sh
#   MODE=bgrewriteaof bench/snapshot.sh
#   REDOUBT_BIN=/path/to/redoubt-server BIG=0 OUT=/tmp/a.md bench/snapshot.sh
#   KEEP_WORK=1 bench/snapshot.sh     (keeps logs, traces and pause files)
#   SAVE_CPUS= bench/snapshot.sh      (the save on the server's core too)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-2000000}
SIZE=${SIZE:-256}
# The load must outlast the save of every round: at 10M requests a load
# faster than usual ended before a BGSAVE did, and a rewrite takes longer.
MODE=${MODE:-bgsave}
if [ "$MODE" = bgrewriteaof ]; then
  REQUESTS=${REQUESTS:-20000000}
else
  REQUESTS=${REQUESTS:-14000000}
fi
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
# Unset: the client's core; set but empty: none (the server's core).
SAVE_CPUS=${SAVE_CPUS-$CLIENT_CORE}
SAVE_PINNING=()
if [ -n "$SAVE_CPUS" ]; then
  SAVE_PINNING=(--bgsave_cpulist "$SAVE_CPUS" --aof_rewrite_cpulist "$SAVE_CPUS")
fi
OUT=${OUT:-BENCHMARKS.md}
BIG=${BIG:-1}
ROUNDS=${ROUNDS:-3}
PROBE=$PWD/bench/stall_probe.py
# The probe's sending loop runs at a real-time priority where the system
# allows it, so that its own wake-ups on the loaded client core are not
# what it times: perf sched showed a kernel thread (kdamond.0) holding a
# woken probe off that core for 5 ms while the server's reply waited in
# its socket.
PROBE_RT=()
chrt -f 10 true 2>/dev/null && PROBE_RT=(--realtime 10)
WATCH=$PWD/bench/save_watch.py
FREEZE=$PWD/bench/freeze_watch.py
if [ "$MODE" = bgrewriteaof ]; then
  # Automatic rewrites off: the load alone grows the AOF past the default
  # trigger, and a rewrite the server starts by itself would run during the
  # "without" figures and overlap the one measured.
  PERSIST=(--appendonly yes --appendfsync everysec --auto-aof-rewrite-percentage 0)
  PROGRESS=aof_rewrite_in_progress
else
  PERSIST=(--appendonly no)
  PROGRESS=rdb_bgsave_in_progress
fi

command -v redis-server >/dev/null || { echo "redis-server not found (apt-get install redis-server)"; exit 1; }
# REDOUBT_BIN runs a given build instead (an A/B of two builds, one run each).
if [ -n "${REDOUBT_BIN:-}" ]; then
  BIN=$REDOUBT_BIN
else
  cargo build --release -q -p redoubt-server
  BIN=$PWD/target/release/redoubt-server
fi
# Everything this script starts from here on runs on the client core unless
# told otherwise (the servers are): perf sched showed shell polling helpers
# landing on the server's core and holding a runnable server off it for
# 3-7 ms at a time, which the probe then counted as write stalls of the
# server. The polling during the load is one process (bench/save_watch.py):
# on the client core, forks every 50 ms held the load and the probe off it.
taskset -cp "$CLIENT_CORE" $$ >/dev/null
WORK=$(mktemp -d)
# KEEP_WORK=1 keeps the servers' logs, the probe traces and the pause
# files of every round (not the dumps) in $WORK, to look into a round.
KEEP_WORK=${KEEP_WORK:-0}
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  python3 bench/free_core.py --restore "$WORK/affinity"
  if [ "$KEEP_WORK" = 1 ]; then
    find "$WORK" \( -name '*.rdb' -o -name '*.aof' -o -name appendonlydir \) -prune -exec rm -rf {} + 2>/dev/null
    echo "kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
# The machine's other tasks leave the server's core for the run, for both
# servers alike (bench/free_core.py says why); FREE_CORE=0 leaves them.
FREE_CORE=${FREE_CORE:-1}
if [ "$FREE_CORE" = 1 ]; then
  python3 bench/free_core.py "$SERVER_CORE" "$WORK/affinity"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# Loads $KEYS keys key:000000000000.. with $SIZE-byte values.
populate_keys() {
  python3 - "$KEYS" "$SIZE" <<'PY' | redis-cli -p "$1" --pipe >/dev/null
import sys
n, size = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
tail = b"\r\n$%d\r\n%s\r\n" % (size, b"x" * size)
batch = []
for i in range(n):
    key = b"key:%012d" % i
    batch.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s%s" % (len(key), key, tail))
    if len(batch) == 10000:
        out.write(b"".join(batch))
        batch = []
out.write(b"".join(batch))
PY
}

# Builds a 1,000,000-element zset and list (members m:%012d, as
# redis-benchmark's __rand_int__ writes them).
populate_big() {
  python3 - "$1" <<'PY' | redis-cli -p "$2" --pipe >/dev/null
import sys
n = 1000000
out = sys.stdout.buffer
def cmd(*args):
    out.write(b"*%d\r\n" % len(args))
    for a in args:
        out.write(b"$%d\r\n%s\r\n" % (len(a), a))
for start in range(0, n, 1000):
    z = [b"ZADD", b"bigzset"]
    l = [b"RPUSH", b"biglist"]
    for i in range(start, start + 1000):
        m = b"m:%012d" % i
        z += [str(i).encode(), m]
        l.append(m)
    cmd(*z)
    cmd(*l)
PY
}

# Keeps writing the big zset and list until killed.
big_writers() {
  taskset -c "$CLIENT_CORE" redis-benchmark -p "$1" -c 1 -n 1000000000 -r 1000000 \
    zadd bigzset __rand_int__ m:__rand_int__ >/dev/null 2>&1 &
  taskset -c "$CLIENT_CORE" redis-benchmark -p "$1" -c 1 -n 1000000000 \
    rpoplpush biglist biglist >/dev/null 2>&1 &
}

# Runs the SET load; prints "rps p99 max" from redis-benchmark's CSV line.
load() {
  taskset -c "$CLIENT_CORE" redis-benchmark -p "$1" -t set -r "$KEYS" -d "$SIZE" -c 50 -P 16 -n "$REQUESTS" --csv 2>/dev/null |
    awk -F'"' '/^"SET"/ {print $4, $14, $16}'
}

info_field() { redis-cli -p "$1" info persistence | tr -d '\r' | awk -F: -v f="$2" '$1==f {print $2}'; }

# One process polling one connection (see bench/save_watch.py for why not
# a shell loop).
wait_save_done() {
  python3 "$WATCH" wait "$1" "$PROGRESS"
}

bench_one() {
  local name=$1 big=$2 port dir pid
  port=$(free_port)
  dir=$WORK/$name-$big; mkdir -p "$dir"
  if [ "$name" = redoubt ]; then
    taskset -c "$SERVER_CORE" "$BIN" --port "$port" --dir "$dir" --save '' "${PERSIST[@]}" \
      "${SAVE_PINNING[@]}" --enable-debug-command yes >"$dir/log" 2>&1 &
  else
    taskset -c "$SERVER_CORE" redis-server --port "$port" --dir "$dir" --save '' "${PERSIST[@]}" \
      "${SAVE_PINNING[@]}" --enable-debug-command yes --daemonize no >"$dir/log" 2>&1 &
  fi
  pid=$!
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
  populate_keys "$port"
  local writers=()
  if [ "$big" = 1 ]; then
    populate_big "$port" "$port"
    big_writers "$port"
    writers=($(jobs -p | tail -2))
  fi
  local base_rss
  base_rss=$(rss_kb "$pid")
  # The machine's own pauses of either core, timed through every round
  # (bench/freeze_watch.py says why), to read the probe's replies against.
  python3 "$FREEZE" watch "$SERVER_CORE" "$dir/pauses-server" &
  local watch_server=$!
  python3 "$FREEZE" watch "$CLIENT_CORE" "$dir/pauses-client" &
  local watch_client=$!
  # Each round: the load without a save, then again with one in the
  # middle. Run to run, the same load's rate on this machine moves by up to
  # a fifth, more than a save costs: one pair of runs says little, so the
  # report takes the median rate of the rounds (and the worst stall and
  # memory of any round).
  local round
  : >"$dir/rounds"
  for round in $(seq "$ROUNDS"); do
    taskset -c "$CLIENT_CORE" python3 "$PROBE" "$port" "${PROBE_RT[@]}" --trace "$dir/probe-base-trace-$round" >"$dir/probe-base" &
    local probe=$!
    local base_rps base_p99 base_max base_probe base_gap
    read -r base_rps base_p99 base_max < <(load "$port")
    kill -TERM "$probe"; wait "$probe" || true
    read -r base_probe base_gap _ _ <"$dir/probe-base"
    local base_less base_pause
    read -r base_less base_pause < <(python3 "$FREEZE" less "$dir/probe-base-trace-$round" "$dir/pauses-server" "$dir/pauses-client")

    # Load with a save in the middle; sample memory every 100 ms.
    local samples=$dir/samples
    : >"$samples"
    python3 "$WATCH" sample "$pid" "$samples" &
    local sampler=$!
    local before_save
    before_save=$(rss_kb "$pid")
    load "$port" >"$dir/during" &
    local loader=$!
    python3 "$WATCH" save "$port" "$MODE" "$PROGRESS" 2.2 >"$dir/save-secs" &
    local saver=$!
    sleep 2
    # The load alone makes the allocator keep more pages than at rest: the
    # RSS just before the save, under the load, is the baseline that leaves
    # only the save's own memory.
    local loaded_rss
    loaded_rss=$(rss_kb "$pid")
    taskset -c "$CLIENT_CORE" python3 "$PROBE" "$port" "${PROBE_RT[@]}" --trace "$dir/probe-trace-$round" >"$dir/probe-save" &
    probe=$!
    wait "$saver"
    # The rate during the save is counted over the save alone, so the
    # load has to outlast it.
    if ! kill -0 "$loader" 2>/dev/null; then
      echo "$name: the load ended before the $MODE did; raise REQUESTS ($REQUESTS)" >&2
      # This runs in a subshell: its server, probe and sampler are its own
      # jobs, which the main shell's exit trap does not see.
      kill $(jobs -p) 2>/dev/null || true
      exit 1
    fi
    kill -TERM "$probe"; wait "$probe" || true
    local save_probe save_gap probe_sets
    read -r save_probe save_gap _ probe_sets <"$dir/probe-save"
    local save_less save_pause
    read -r save_less save_pause < <(python3 "$FREEZE" less "$dir/probe-trace-$round" "$dir/pauses-server" "$dir/pauses-client")
    wait "$loader"
    kill -TERM "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    # redis-benchmark's rate and latencies are those of the whole run,
    # about 2 s of which come before the save and some after it.
    local run_rps save_p99 save_max
    read -r run_rps save_p99 save_max <"$dir/during"
    # The rate during the save: the SET calls the server counted from the
    # BGSAVE to its end, less every one the probe sent (its own SETs, a
    # few hundred a second), over that time.
    local save_secs save_calls save_rps
    read -r save_secs save_calls <"$dir/save-secs"
    save_rps=$(python3 -c "print(($save_calls - $probe_sets) / $save_secs)")
    local peak
    peak=$(sort -n "$samples" | tail -1)
    echo "$base_rps $base_p99 $base_max $base_probe $base_gap $save_rps $save_p99 $save_max $save_probe $save_gap" \
      "$before_save $peak $save_secs $loaded_rss $run_rps $base_less $base_pause $save_less $save_pause" >>"$dir/rounds"
  done
  kill -TERM "$watch_server" "$watch_client" 2>/dev/null || true
  wait "$watch_server" "$watch_client" 2>/dev/null || true
  if [ ${#writers[@]} -gt 0 ]; then kill "${writers[@]}" 2>/dev/null || true; wait "${writers[@]}" 2>/dev/null || true; fi
  # Each round's figures (the columns of the echo above) on stderr, for
  # finding which round a worst case came from.
  sed "s/^/$name big=$big round: /" "$dir/rounds" >&2
  # Medians of the rates, p99s and save durations; the longest stalls and
  # latencies of any round; the memory of the round whose save took the
  # largest share.
  local summary
  summary=$(python3 - "$dir/rounds" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
col = lambda i: [r[i] for r in rows]
med = lambda i: statistics.median(col(i))
mem = max(rows, key=lambda r: (r[11] - r[10]) / r[10])
print(med(0), med(1), max(col(2)), max(col(3)), max(col(4)),
      med(5), med(6), max(col(7)), max(col(8)), max(col(9)),
      int(mem[10]), int(mem[11]), med(12), int(mem[13]), med(14),
      max(col(15)), max(col(16)), max(col(17)), max(col(18)))
PY
)
  local base_rps base_p99 base_max base_probe base_gap save_rps save_p99 save_max save_probe save_gap before_save peak save_secs loaded_rss run_rps
  local base_less base_pause save_less save_pause
  read -r base_rps base_p99 base_max base_probe base_gap save_rps save_p99 save_max save_probe save_gap before_save peak save_secs loaded_rss run_rps \
    base_less base_pause save_less save_pause <<<"$summary"

  # Idle save.
  t0=$(date +%s.%N)
  redis-cli -p "$port" "$MODE" >/dev/null
  sleep 0.05
  wait_save_done "$port"
  t1=$(date +%s.%N)
  local idle_secs
  idle_secs=$(echo "$t1 - $t0" | bc)
  local cow
  cow=$(info_field "$port" rdb_last_cow_size)
  [ "$MODE" = bgrewriteaof ] && cow=$(info_field "$port" aof_last_cow_size)
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$pid" 2>/dev/null || true
  echo "$name $base_rps $base_p99 $base_max $save_rps $save_p99 $save_max $before_save $peak $save_secs $idle_secs $base_rss $base_probe $base_gap $save_probe $save_gap ${cow:-0} $loaded_rss $run_rps $base_less $base_pause $save_less $save_pause"
}

r1=$(bench_one redoubt 0)
r2=$(bench_one redis 0)
echo "$r1"
echo "$r2"
r3=-
r4=-
if [ "$BIG" = 1 ]; then
  r3=$(bench_one redoubt 1)
  r4=$(bench_one redis 1)
  echo "$r3"
  echo "$r4"
fi

python3 - "$OUT" "$KEYS" "$SIZE" "$REQUESTS" "$r1" "$r2" "$MODE" "$r3" "$r4" "$ROUNDS" "${PROBE_RT[*]:-}" "$FREE_CORE" "$SAVE_CPUS" "$SERVER_CORE" "$CLIENT_CORE" <<'EOF'
import sys, re
out, keys, size, requests, a, b, mode, c, d, rounds, probe_rt, free_core, save_cpus, server_core, client_core = sys.argv[1:]
tag = "snapshot" if mode == "bgsave" else "rewrite"
# The save on the server's core is a configuration of its own, reported
# apart from the default one.
if not save_cpus:
    tag += "-one-core"
cpulists = "`bgsave_cpulist`" if mode == "bgsave" else "`aof_rewrite_cpulist`"
where_save = (f"the save's own threads (Redoubt's encoder and writer, Redis's forked child) on core {save_cpus} ({cpulists} {save_cpus} for both)"
              if save_cpus else "the save's own threads (Redoubt's encoder and writer, Redis's forked child) on the server's core too")
what = "BGSAVE" if mode == "bgsave" else "BGREWRITEAOF (appendonly yes, everysec)"
def parse(line):
    f = line.split()
    keys = ["name","base_rps","base_p99","base_max","save_rps","save_p99","save_max","before_kb","peak_kb","save_s","idle_s","rss_kb",
            "base_probe","base_gap","save_probe","save_gap","cow","loaded_kb","run_rps",
            "base_less","base_pause","save_less","save_pause"]
    d = dict(zip(keys, f))
    for k in keys[1:]:
        d[k] = float(d.get(k) or 0)
    return d
def extra(d): return (d["peak_kb"] - d["before_kb"]) / 1024
def frac(d): return 100 * (d["peak_kb"] - d["before_kb"]) / d["before_kb"]
def frac_loaded(d):
    return 100 * (d["peak_kb"] - d["loaded_kb"]) / d["loaded_kb"] if d["loaded_kb"] else 0
def table(r, s):
    rows = [
     ("SET ops/s without a save", r["base_rps"], s["base_rps"], "{:.0f}"),
     ("SET ops/s during the save (from the server's SET count)", r["save_rps"], s["save_rps"], "{:.0f}"),
     ("during / without", 100*r["save_rps"]/r["base_rps"], 100*s["save_rps"]/s["base_rps"], "{:.0f}%"),
     ("SET ops/s of the whole run the save is in", r["run_rps"], s["run_rps"], "{:.0f}"),
     ("whole run / without", 100*r["run_rps"]/r["base_rps"], 100*s["run_rps"]/s["base_rps"], "{:.0f}%"),
     ("p99 latency without (ms)", r["base_p99"], s["base_p99"], "{:.2f}"),
     ("p99 latency of the run the save is in (ms)", r["save_p99"], s["save_p99"], "{:.2f}"),
     ("redis-benchmark max latency in that run (ms; its histogram stops at 3000)", r["save_max"], s["save_max"], "{:.2f}"),
     ("probe: longest SET reply without a save (ms)", r["base_probe"], s["base_probe"], "{:.2f}"),
     ("probe: longest SET reply during the save (ms, the longest write stall)", r["save_probe"], s["save_probe"], "{:.2f}"),
     ("probe: longest gap between replies during the save (ms; 1 ms = none)", r["save_gap"], s["save_gap"], "{:.2f}"),
     ("machine: longest pause during the probe without a save (ms; either core, overlapping pauses of the two joined)", r["base_pause"], s["base_pause"], "{:.2f}"),
     ("machine: longest pause during the probe in the save (ms; either core, overlapping pauses of the two joined)", r["save_pause"], s["save_pause"], "{:.2f}"),
     ("probe: longest SET reply without a save, less the pauses within it (ms)", r["base_less"], s["base_less"], "{:.2f}"),
     ("probe: longest SET reply during the save, less the pauses within it (ms)", r["save_less"], s["save_less"], "{:.2f}"),
     ("RSS before the save (MiB)", r["before_kb"]/1024, s["before_kb"]/1024, "{:.0f}"),
     ("peak extra memory (MiB)", extra(r), extra(s), "{:.0f}"),
     ("peak extra / RSS before", frac(r), frac(s), "{:.1f}%"),
     ("RSS under the load just before the save (MiB)", r["loaded_kb"]/1024, s["loaded_kb"]/1024, "{:.0f}"),
     ("peak extra over that / that (the save's own share)", frac_loaded(r), frac_loaded(s), "{:.1f}%"),
     ("INFO rdb_last_cow_size / aof_last_cow_size (MiB)", r["cow"]/2**20, s["cow"]/2**20, "{:.1f}"),
     ("save duration under load (s)", r["save_s"], s["save_s"], "{:.1f}"),
     ("idle save duration (s)", r["idle_s"], s["idle_s"], "{:.1f}"),
    ]
    out = ["| measure | Redoubt | Redis 7.0.15 | Redoubt/Redis |", "|---|---|---|---|"]
    for label, x, y, fmt in rows:
        ratio = f"{x/y:.2f}" if y else "-"
        out.append(f"| {label} | {fmt.format(x)} | {fmt.format(y)} | {ratio} |")
    return out
command = ("" if save_cpus else "SAVE_CPUS= ") + f"MODE={mode} KEYS={keys} SIZE={size} REQUESTS={requests} bench/snapshot.sh"
title = f"## {what} under an overwrite load" + ("" if save_cpus else ", the save on the server's core")
lines = [f"<!-- {tag}:start -->", title, "",
 f"`{command}` — {keys} keys x {size} bytes named as the load names them, so it overwrites them, "
 f"load `redis-benchmark -t set -r {keys} -d {size} -c 50 -P 16 -n {requests}`, server on core {server_core}, client on core {client_core}, {where_save}, "
 f"{mode.upper()} 2 s into the second run, {rounds} rounds of both runs (medians of rates, p99s and durations; worst stall, max latency and memory of any round), RSS sampled every 100 ms (Redis: parent RSS + child Private_Dirty). "
 "SET ops/s during the save: the SET calls the server counted (INFO commandstats) from the command to the end of the save, less the probe's, over that time; "
 "redis-benchmark's own rate and latencies are those of its whole run, about 2 s of which come before the save. "
 "The probe (`bench/stall_probe.py`) sends one SET per ms on its own connection during the load"
 + (", its sending loop at a real-time priority (SCHED_FIFO 10) so that it is not itself kept waiting on the client's core." if probe_rt else ".")
 + (" The machine's other tasks that can run elsewhere are moved off the server's core for the run (`bench/free_core.py`: the VM's own agent took it for 5-26 ms at a time)." if free_core == "1" else "")
 + " A real-time thread on each core (`bench/freeze_watch.py`, SCHED_FIFO 50, one wake-up per ms) times the machine's pauses of that core: the wake-ups it gets more than 0.5 ms late, when its core is paused by the host or the kernel does not switch tasks. "
 "\"less the pauses\" takes the part of each of the probe's replies that falls in such a pause off that reply; the raw figures above it are the probe's own.", ""]
lines += table(parse(a), parse(b))
if c != "-":
    lines += ["", "Same again with a 1,000,000-element zset and a 1,000,000-element list being written during both loads "
              "(`redis-benchmark -c 1 zadd bigzset __rand_int__ m:__rand_int__` and `-c 1 rpoplpush biglist biglist`):", ""]
    lines += table(parse(c), parse(d))
lines.append(f"<!-- {tag}:end -->")
block = "\n".join(lines)
try:
    text = open(out).read()
except FileNotFoundError:
    text = "# Benchmarks\n"
if f"<!-- {tag}:start -->" in text:
    text = re.sub(f"<!-- {tag}:start -->.*<!-- {tag}:end -->", block, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + block + "\n"
open(out, "w").write(text)
print(block)
EOF
