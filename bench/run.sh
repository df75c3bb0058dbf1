#!/usr/bin/env bash
# kanary overhead benchmark: ONE command, everything side by side in one run.
#
#   bash bench/run.sh [--quick]
#
#   1. syscall micro-benchmark: ns per getppid() in a container and on the host, with no agent,
#      an empty program on sys_enter (two flavours: tp_btf like kanary, and bpftrace's classic
#      tracepoint), kanary default, kanary with everything on, and bpftrace's per-cgroup count;
#      the configurations are run in interleaved rounds (A B C D ... A B C D ...).
#   2. agent cost: kanary's CPU (% of one core), peak RSS, events/s and drops with 0, 20 idle,
#      20 busy and 100 idle containers (100: full run only) and under a syscall storm.
#   3. workloads: nginx under wrk and redis under redis-benchmark, without and with kanary,
#      interleaved.
#
# Writes bench/results/<date>-<host>.json (every raw sample plus the summary) and
# bench/results/latest.md (the tables), and prints the tables. --quick: fewer and shorter
# rounds, no 100-container phase (~3 minutes); the full run takes ~15 minutes.
# Needs root (eBPF, docker). Installs what it needs with apt-get. Every container it starts
# carries the label org.kanary.bench=<run id> and is removed on exit, whatever happens.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD

log() { printf 'bench: %(%T)T %s\n' -1 "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h | --help)
            sed -n '2,20p' "$0" >&2
            exit 0
            ;;
        *) die "unknown argument: $arg (expected --quick)" ;;
    esac
done
((EUID == 0)) || die "run as root (eBPF and docker)"

# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------
if ((QUICK)); then
    SC_ROUNDS=3 SC_ITERS=500000 SC_BATCHES=3
    AG_REPS=1 AG_SECONDS=10 AG_BIG=0
    WL_ROUNDS=1 WRK_SECONDS=5 REDIS_REQUESTS=100000
    QUIET_WAIT=10 QUIET_BUDGET=30 SC_ATTEMPTS=2
else
    SC_ROUNDS=5 SC_ITERS=1000000 SC_BATCHES=5
    AG_REPS=2 AG_SECONDS=15 AG_BIG=1
    WL_ROUNDS=3 WRK_SECONDS=10 REDIS_REQUESTS=300000
    QUIET_WAIT=30 QUIET_BUDGET=240 SC_ATTEMPTS=3
fi
QUIET_SPENT=0
SC_CONFIGS=(none floor_tp_btf floor_tp_btf_pair floor_bpftrace kanary_default kanary_syscalls_only kanary_full bpftrace_count)
# The empty-program floors run the workloads too: what any syscall-level collector costs them.
WL_CONFIGS=(none floor_tp_btf floor_tp_btf_pair kanary_default)
BUSYBOX=kanary-test/busybox:1
DEBIAN=kanary-test/debian:1
AGENT_READY_TIMEOUT=60
NCPU=$(nproc)

RUN_ID=$(date -u +%Y%m%dT%H%M%S)-$$
LABEL=org.kanary.bench=$RUN_ID
PREFIX=kbench-$$
WORK=$(mktemp -d /tmp/kanary-bench.XXXXXX)
BIN=$WORK/bin
SAMPLES=$WORK/samples.ndjson
mkdir -p "$BIN" "$WORK/data" "$WORK/starts"
: >"$SAMPLES"

AGENT_PID=""
AGENT_EVENTS=""
AGENT_CONFIG=""
AGENT_START_S=""
AGENT_STOP_S=""
WAIT_IDS=()
OK=0

# ---------------------------------------------------------------------------------------------
# Clean-up: the agent we started (by pid) and every container carrying this run's label.
# ---------------------------------------------------------------------------------------------
cleanup() {
    set +e
    if [[ -n "$AGENT_PID" ]]; then
        kill -INT "$AGENT_PID" 2>/dev/null
        kill -TERM "$AGENT_PID" 2>/dev/null
        sleep 1
        kill -KILL "$AGENT_PID" 2>/dev/null
        wait "$AGENT_PID" 2>/dev/null
        AGENT_PID=""
    fi
    local ids
    ids=$(docker ps -aq --filter "label=$LABEL" 2>/dev/null)
    if [[ -n "$ids" ]]; then
        log "removing $(wc -w <<<"$ids") benchmark container(s)"
        # shellcheck disable=SC2086 # one id per word
        docker rm -f $ids >/dev/null 2>&1
    fi
    if ((OK)); then
        rm -rf "$WORK"
    else
        log "scratch files kept for inspection in $WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Set-up: packages, docker, images, the release build, the benchmark's own binaries.
# ---------------------------------------------------------------------------------------------
T_START=$SECONDS
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
bash scripts/install-deps.sh --test
need=()
for pkg in bpftrace wrk redis-tools libbpf-dev gcc libc6-dev python3; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || need+=("$pkg")
done
if ((${#need[@]})); then
    log "apt-get install ${need[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
bash scripts/start-dockerd.sh
bash scripts/build-test-images.sh

log "cargo build --release -p kanary"
cargo build --release -p kanary >&2
KANARY=$(realpath "${CARGO_TARGET_DIR:-target}/release/kanary")

log "building bench/src binaries into $BIN"
gcc -O2 -Wall -static -o "$BIN/sysloop" bench/src/sysloop.c
gcc -O2 -Wall -o "$BIN/attach" bench/src/attach.c -lbpf
clang-19 -O2 -g -target bpf -I"/usr/include/$(gcc -print-multiarch)" \
    -c bench/src/empty.bpf.c -o "$BIN/empty.bpf.o"
clang-19 -O2 -g -target bpf -I"/usr/include/$(gcc -print-multiarch)" \
    -c bench/src/empty-pair.bpf.c -o "$BIN/empty-pair.bpf.o"
T_SETUP=$((SECONDS - T_START))

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

# How many kanary or bpftrace processes run that this script did not start (other people's
# test runs on a shared machine): each puts its own programs on the syscall path.
foreign_agents() {
    local agents=0 pid
    for pid in $(pgrep -x kanary || true) $(pgrep -x bpftrace || true); do
        [[ "$pid" == "$AGENT_PID" ]] || agents=$((agents + 1))
    done
    echo "$agents"
}

# Before a round: give someone else's agent up to QUIET_WAIT seconds to go away, within a
# budget of QUIET_BUDGET seconds for the whole run (a stuck foreign agent must not make the
# run take forever).
wait_quiet() {
    local wait=$((QUIET_BUDGET - QUIET_SPENT)) n t0=$SECONDS
    ((wait < QUIET_WAIT)) || wait=$QUIET_WAIT
    n=$(foreign_agents)
    ((n > 0 && wait > 0)) || return 0
    log "  $n foreign kanary/bpftrace process(es) running; waiting up to ${wait}s for them to exit"
    while ((n > 0 && SECONDS < t0 + wait)); do
        sleep 1
        n=$(foreign_agents)
    done
    QUIET_SPENT=$((QUIET_SPENT + SECONDS - t0))
    ((n == 0)) || log "  still $n foreign agent(s): measuring anyway (recorded in the samples)"
}

# JSON fragment describing what else was running when a sample was taken (noise bookkeeping):
# foreign agents, containers not ours, all loaded BPF programs (ours included), load average.
context_json() {
    local all mine progs
    all=$(docker ps -q | wc -l)
    mine=$(docker ps -q --filter "label=$LABEL" | wc -l)
    progs=$(bpftool prog show 2>/dev/null | grep -c '^[0-9]' || true)
    printf '"foreign_agents":%d,"foreign_containers":%d,"bpf_programs":%d,"load1":%s' \
        "$(foreign_agents)" "$((all - mine))" "$progs" "$(cut -d' ' -f1 /proc/loadavg)"
}

# Starts a container with this run's label; prints its id.
run_container() {
    local name=$1
    shift
    docker run -d --label "$LABEL" --name "$PREFIX-$name" "$@"
}

# Starts COUNT containers NAME-1..NAME-COUNT (4 at a time), the rest of the arguments being
# docker run's; prints their ids.
run_containers() {
    local name=$1 count=$2
    shift 2
    seq "$count" | xargs -P 4 -I{} docker run -d --label "$LABEL" --name "$PREFIX-$name-{}" "$@"
}

remove_containers() {
    local ids
    ids=$(docker ps -aq --filter "label=$LABEL" --filter "name=$PREFIX-$1")
    # shellcheck disable=SC2086 # one id per word
    [[ -z "$ids" ]] || xargs -n 10 -P 4 docker rm -f <<<"$ids" >/dev/null
}

wait_for_line() { # FILE PATTERN TIMEOUT_S PID
    local file=$1 pattern=$2 deadline=$((SECONDS + $3)) pid=$4
    until grep -q -- "$pattern" "$file" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || die "agent (pid $pid) exited before '$pattern'; log: $(tail -n 5 "$file.log" "$file" 2>/dev/null)"
        ((SECONDS < deadline)) || die "no '$pattern' in $file after $3 s"
        sleep 0.1
    done
}

# Starts configuration $1 in the background and returns once it is attached: for kanary,
# once agent_start is written and every container in WAIT_IDS has had its container_start
# (so the in-kernel filter knows them); for bpftrace, once its BEGIN probe ran (after the
# other probes attached); for the floor, once the loader printed that it attached.
start_agent() {
    AGENT_CONFIG=$1
    AGENT_EVENTS=$WORK/events-$1.ndjson
    AGENT_START_S=""
    rm -f "$AGENT_EVENTS" "$AGENT_EVENTS.log"
    local t0=$EPOCHREALTIME
    case "$1" in
        none) return 0 ;;
        floor_tp_btf)
            "$BIN/attach" "$BIN/empty.bpf.o" >"$AGENT_EVENTS" 2>"$AGENT_EVENTS.log" &
            AGENT_PID=$!
            wait_for_line "$AGENT_EVENTS" 'attached 1 program' "$AGENT_READY_TIMEOUT" "$AGENT_PID"
            ;;
        floor_tp_btf_pair)
            "$BIN/attach" "$BIN/empty-pair.bpf.o" >"$AGENT_EVENTS" 2>"$AGENT_EVENTS.log" &
            AGENT_PID=$!
            wait_for_line "$AGENT_EVENTS" 'attached 2 program' "$AGENT_READY_TIMEOUT" "$AGENT_PID"
            ;;
        floor_bpftrace | bpftrace_count)
            local body='{}'
            [[ "$1" == bpftrace_count ]] && body='{ @[cgroup] = count(); }'
            bpftrace -e "BEGIN { printf(\"ready\\n\"); } tracepoint:raw_syscalls:sys_enter $body" \
                >"$AGENT_EVENTS" 2>"$AGENT_EVENTS.log" &
            AGENT_PID=$!
            wait_for_line "$AGENT_EVENTS" '^ready' "$AGENT_READY_TIMEOUT" "$AGENT_PID"
            ;;
        kanary_default | kanary_syscalls_only | kanary_full)
            local config=bench/configs/default.toml
            [[ "$1" == kanary_syscalls_only ]] && config=bench/configs/syscalls-only.toml
            [[ "$1" == kanary_full ]] && config=bench/configs/full.toml
            KANARY_LOG=warn "$KANARY" run --config "$config" --events "$AGENT_EVENTS" \
                --data-dir "$WORK/data" 2>"$AGENT_EVENTS.log" &
            AGENT_PID=$!
            wait_for_line "$AGENT_EVENTS" '"type":"agent_start"' "$AGENT_READY_TIMEOUT" "$AGENT_PID"
            AGENT_START_S=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
            local id missing deadline=$((SECONDS + AGENT_READY_TIMEOUT))
            while :; do
                # One pass over the file per check: with busy containers it grows by MBs/s.
                grep -F '"type":"container_start"' "$AGENT_EVENTS" >"$WORK/seen" || true
                missing=""
                for id in "${WAIT_IDS[@]}"; do
                    grep -q -F "${id:0:12}" "$WORK/seen" || {
                        missing=${id:0:12}
                        break
                    }
                done
                [[ -n "$missing" ]] || break
                kill -0 "$AGENT_PID" 2>/dev/null || die "kanary exited; log: $(tail -n 5 "$AGENT_EVENTS.log")"
                ((SECONDS < deadline)) || die "kanary never reported container $missing"
                sleep 0.2
            done
            # Which collectors really loaded (a collector that failed would flatter the figures).
            [[ -s "$WORK/starts/$1.json" ]] ||
                python3 bench/src/report.py events "$AGENT_EVENTS" | cut -d' ' -f3- >"$WORK/starts/$1.json"
            ;;
        *) die "unknown configuration $1" ;;
    esac
}

stop_agent() {
    AGENT_STOP_S=""
    [[ -n "$AGENT_PID" ]] || return 0
    local t0=$EPOCHREALTIME
    # Background jobs of a script ignore SIGINT unless they install a handler: kanary and
    # bpftrace do (and flush on it), the floor's loader does not, so it gets SIGTERM.
    local signal=INT
    [[ "$AGENT_CONFIG" == floor_tp_btf* ]] && signal=TERM
    kill -"$signal" "$AGENT_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while kill -0 "$AGENT_PID" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
    done
    kill -KILL "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" 2>/dev/null || true
    AGENT_PID=""
    AGENT_STOP_S=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
}

cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
median_of() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---------------------------------------------------------------------------------------------
# 1. Syscall micro-benchmark
# ---------------------------------------------------------------------------------------------
T1=$SECONDS
log "part 1: syscall micro-benchmark, $SC_ROUNDS rounds of ${SC_CONFIGS[*]}"
loop_id=$(run_container loop -v "$BIN:/bench:ro" "$BUSYBOX" sleep 86400)
WAIT_IDS=("$loop_id")
# One syscall sample: sysloop pinned to each CPU in turn, in the container or on the host.
# Costs differ by CPU (see bench/src/sysloop.c), so the sample's figure is the mean over CPUs,
# i.e. a syscall on a random CPU. sysloop reports thread CPU time per call (robust to
# preemption by other work) and, for reference, wall-clock time. Sets NS, WALL, PER_CPU.
syscall_sample() {
    local where=$1 cpu out
    local -a per_cpu=() per_cpu_wall=()
    for ((cpu = 0; cpu < NCPU; cpu++)); do
        if [[ $where == container ]]; then
            out=$(docker exec "$PREFIX-loop" /bench/sysloop "$SC_ITERS" "$SC_BATCHES" "$cpu")
        else
            out=$("$BIN/sysloop" "$SC_ITERS" "$SC_BATCHES" "$cpu")
        fi
        per_cpu+=("$(awk '$1 == "median" { print $2 }' <<<"$out")")
        per_cpu_wall+=("$(awk '$1 == "median" { print $4 }' <<<"$out")")
    done
    NS=$(printf '%s\n' "${per_cpu[@]}" | awk '{ s += $1 } END { printf "%.2f", s / NR }')
    WALL=$(printf '%s\n' "${per_cpu_wall[@]}" | awk '{ s += $1 } END { printf "%.2f", s / NR }')
    PER_CPU=$(IFS=,; echo "${per_cpu[*]}")
}

for ((round = 1; round <= SC_ROUNDS; round++)); do
    for config in "${SC_CONFIGS[@]}"; do
        wait_quiet
        start_agent "$config"
        for where in container host; do
            # Someone else's agent puts its own programs on every syscall: a sample during
            # which one ran (seen before or after it) is retried, up to SC_ATTEMPTS times, and
            # kept but marked unclean if it never gets a quiet moment.
            for ((attempt = 1; attempt <= SC_ATTEMPTS; attempt++)); do
                ((attempt == 1)) || wait_quiet
                before=$(foreign_agents)
                syscall_sample "$where"
                after=$(foreign_agents)
                clean=true
                ((before == 0 && after == 0)) || clean=false
                [[ $clean == false && $attempt -lt $SC_ATTEMPTS ]] || break
                log "  round $round $config $where: a foreign agent ran during the sample; retrying"
            done
            printf '{"part":"syscall","round":%d,"config":"%s","where":"%s","ns":%s,"ns_per_cpu":[%s],"ns_wall":%s,"clean":%s,"attempts":%d,%s}\n' \
                "$round" "$config" "$where" "$NS" "$PER_CPU" "$WALL" "$clean" "$attempt" "$(context_json)" >>"$SAMPLES"
            log "  round $round $config $where: $NS ns/call (per CPU: ${PER_CPU//,/ })$([[ $clean == true ]] || echo ' UNCLEAN')"
        done
        stop_agent
    done
done
remove_containers loop
T1=$((SECONDS - T1))

# ---------------------------------------------------------------------------------------------
# 2. Agent cost
# ---------------------------------------------------------------------------------------------
T2=$SECONDS
# One phase: AG_REPS fresh agents (default config), each measured over AG_SECONDS after it has
# seen every container of the phase. A fresh agent per run so VmHWM is this phase's peak.
measure_agent() {
    local phase=$1 count=$2 rep cpu0 cpu1 t0 t1 l0 l1 hwm rss records drops
    local hz
    hz=$(getconf CLK_TCK)
    for ((rep = 1; rep <= AG_REPS; rep++)); do
        wait_quiet
        start_agent kanary_default
        sleep 2
        t0=$EPOCHREALTIME
        cpu0=$(cpu_ticks "$AGENT_PID")
        l0=$(wc -l <"$AGENT_EVENTS")
        sleep "$AG_SECONDS"
        t1=$EPOCHREALTIME
        cpu1=$(cpu_ticks "$AGENT_PID")
        l1=$(wc -l <"$AGENT_EVENTS")
        hwm=$(status_kb "$AGENT_PID" VmHWM)
        rss=$(status_kb "$AGENT_PID" VmRSS)
        local ctx
        ctx=$(context_json)
        stop_agent
        read -r records drops _ < <(python3 bench/src/report.py events "$AGENT_EVENTS")
        local line
        line=$(awk -v p="$phase" -v n="$count" -v r="$rep" -v t0="$t0" -v t1="$t1" \
            -v c0="$cpu0" -v c1="$cpu1" -v hz="$hz" -v l0="$l0" -v l1="$l1" -v hwm="$hwm" \
            -v rss="$rss" -v rec="$records" -v d="$drops" -v st="$AGENT_START_S" \
            -v sp="$AGENT_STOP_S" -v ctx="$ctx" 'BEGIN {
                s = t1 - t0
                printf "{\"part\":\"agent\",\"phase\":\"%s\",\"containers\":%d,\"rep\":%d,\"seconds\":%.3f,", p, n, r, s
                printf "\"cpu_pct\":%.3f,\"hwm_kb\":%d,\"rss_kb\":%d,", 100 * (c1 - c0) / hz / s, hwm, rss
                printf "\"events\":%d,\"events_per_s\":%.2f,\"records_total\":%d,\"drops\":%d,", l1 - l0, (l1 - l0) / s, rec, d
                printf "\"start_s\":%s,\"stop_s\":%s,%s}\n", st, sp, ctx
            }')
        printf '%s\n' "$line" >>"$SAMPLES"
        log "  $phase rep $rep: $line"
    done
}

log "part 2: agent cost"
WAIT_IDS=()
measure_agent idle0 0

log "  starting 20 idle containers"
mapfile -t WAIT_IDS < <(run_containers idle 20 "$BUSYBOX" sh -c 'while true; do sleep 1; done')
measure_agent idle20 20
if ((AG_BIG)); then
    log "  starting 80 more idle containers"
    mapfile -t more < <(seq 21 100 | xargs -P 4 -I{} docker run -d --label "$LABEL" \
        --name "$PREFIX-idle-{}" "$BUSYBOX" sh -c 'while true; do sleep 1; done')
    WAIT_IDS+=("${more[@]}")
    measure_agent idle100 100
fi
remove_containers idle

log "  starting 20 busy containers"
mapfile -t WAIT_IDS < <(run_containers busy 20 "$BUSYBOX" sh -c 'while true; do cat /etc/passwd >/dev/null; done')
measure_agent busy20 20
remove_containers busy

mapfile -t WAIT_IDS < <(run_container storm -v "$BIN:/bench:ro" "$BUSYBOX" /bench/sysloop forever)
measure_agent storm 1
remove_containers storm
T2=$((SECONDS - T2))

# ---------------------------------------------------------------------------------------------
# 3. Workloads
# ---------------------------------------------------------------------------------------------
T3=$SECONDS
log "part 3: workloads, $WL_ROUNDS rounds of ${WL_CONFIGS[*]}"
nginx_id=$(run_container nginx "$DEBIAN" nginx -g 'daemon off;')
redis_id=$(run_container redis "$DEBIAN" redis-server --protected-mode no --save '' --appendonly no)
WAIT_IDS=("$nginx_id" "$redis_id")
ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
nginx_ip=$(ip_of "$nginx_id")
redis_ip=$(ip_of "$redis_id")
for target in "$nginx_ip:80" "$redis_ip:6379"; do
    deadline=$((SECONDS + 30))
    until timeout 1 bash -c "exec 3<>/dev/tcp/${target%:*}/${target#*:}" 2>/dev/null; do
        ((SECONDS < deadline)) || die "$target does not accept connections"
        sleep 0.2
    done
done
# Warm-up, not recorded: first requests pay for page faults and connection set-up.
wrk -t2 -c32 -d2s "http://$nginx_ip/" >/dev/null
redis-benchmark -h "$redis_ip" -q -n 20000 -c 50 -t set,get >/dev/null

for ((round = 1; round <= WL_ROUNDS; round++)); do
    for config in "${WL_CONFIGS[@]}"; do
        wait_quiet
        start_agent "$config"
        out=$(wrk -t2 -c32 -d"${WRK_SECONDS}s" --latency -s bench/src/wrk-report.lua "http://$nginx_ip/")
        line=$(awk -v r="$round" -v c="$config" -v ctx="$(context_json)" '$1 == "WRK" {
            for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            printf "{\"part\":\"workload\",\"workload\":\"nginx (wrk, 32 conns)\",\"round\":%d,\"config\":\"%s\",", r, c
            printf "\"rps\":%s,\"p99_ms\":%.3f,\"p50_ms\":%.3f,\"errors\":%d,%s}\n", v["rps"], v["p99_us"] / 1000, v["p50_us"] / 1000, v["errors"], ctx
        }' <<<"$out")
        [[ -n "$line" ]] || die "no WRK line in wrk's output: $out"
        printf '%s\n' "$line" >>"$SAMPLES"
        log "  round $round $config: $line"
        out=$(redis-benchmark -h "$redis_ip" -n "$REDIS_REQUESTS" -c 50 -t set,get --csv)
        ctx=$(context_json)
        while IFS=, read -r test rps _avg _min _p50 _p95 p99 _max; do
            test=${test//\"/}
            [[ "$test" == SET || "$test" == GET ]] || continue
            line=$(printf '{"part":"workload","workload":"redis %s (redis-benchmark, 50 conns)","round":%d,"config":"%s","rps":%s,"p99_ms":%s,"errors":0,%s}' \
                "$test" "$round" "$config" "${rps//\"/}" "${p99//\"/}" "$ctx")
            printf '%s\n' "$line" >>"$SAMPLES"
            log "  round $round $config: $line"
        done <<<"$out"
        stop_agent
    done
done
remove_containers nginx
remove_containers redis
T3=$((SECONDS - T3))

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
host=$(hostname -s)
date_tag=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p bench/results
RESULTS=bench/results/$date_tag-$host.json
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- crates bpf 2>/dev/null || commit="$commit+dirty"
export B_DATE=$date_tag B_HOST=$host B_QUICK=$QUICK B_COMMIT=$commit B_RESULTS=$RESULTS
B_KERNEL=$(uname -r)
B_NPROC=$(nproc)
B_CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
B_BPFTRACE=$(bpftrace --version 2>/dev/null | head -n 1)
B_DOCKER=$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')
export B_KERNEL B_NPROC B_CPU B_BPFTRACE B_DOCKER
export B_PARAMS="{\"syscall_rounds\":$SC_ROUNDS,\"syscall_iterations\":$SC_ITERS,\"syscall_batches\":$SC_BATCHES,\"agent_reps\":$AG_REPS,\"agent_seconds\":$AG_SECONDS,\"workload_rounds\":$WL_ROUNDS,\"wrk_seconds\":$WRK_SECONDS,\"redis_requests\":$REDIS_REQUESTS}"
export B_TIMES="{\"setup_s\":$T_SETUP,\"syscalls_s\":$T1,\"agent_s\":$T2,\"workloads_s\":$T3,\"quiet_wait_s\":$QUIET_SPENT}"
export B_STARTS=$WORK/starts
python3 - "$WORK/meta.json" <<'EOF'
import json, os, sys
env = os.environ
starts = {}
for name in sorted(os.listdir(env["B_STARTS"])):
    with open(os.path.join(env["B_STARTS"], name)) as f:
        starts[name[:-5]] = json.load(f)
meta = {
    "date": env["B_DATE"], "host": env["B_HOST"], "quick": env["B_QUICK"] == "1",
    "commit": env["B_COMMIT"], "kernel": env["B_KERNEL"], "nproc": int(env["B_NPROC"]),
    "cpu": env["B_CPU"], "bpftrace": env["B_BPFTRACE"], "docker": env["B_DOCKER"],
    "results_file": env["B_RESULTS"], "params": json.loads(env["B_PARAMS"]),
    "durations": json.loads(env["B_TIMES"]), "kanary_collectors": starts,
    "floor_tp_btf": "bench/src/empty.bpf.c: an empty SEC(\"tp_btf/sys_enter\") program, loaded and attached by bench/src/attach.c (libbpf)",
    "floor_tp_btf_pair": "bench/src/empty-pair.bpf.c: empty SEC(\"tp_btf/sys_enter\") and SEC(\"tp_btf/sys_exit\") programs, loaded and attached by bench/src/attach.c",
    "floor_bpftrace": "bpftrace -e 'tracepoint:raw_syscalls:sys_enter {}' (a classic perf-event tracepoint program)",
    "bpftrace_count": "bpftrace -e 'tracepoint:raw_syscalls:sys_enter { @[cgroup] = count(); }'",
}
with open(sys.argv[1], "w") as f:
    json.dump(meta, f)
EOF
python3 bench/src/report.py report "$SAMPLES" "$WORK/meta.json" "$RESULTS" bench/results/latest.md
OK=1
log "done in $((SECONDS - T_START)) s (set-up ${T_SETUP} s, syscalls ${T1} s, agent ${T2} s, workloads ${T3} s)"
log "results: $REPO/$RESULTS"
log "table:   $REPO/bench/results/latest.md"
