#!/usr/bin/env bash
# Load test of the web service (demos/examples/service.rs), one backend after another.
#
# For each backend: start the server on 127.0.0.1, drive POST /heavy with oha at full speed
# (enough connections to keep every core busy) and, after a warm-up, GET /light at a fixed
# modest rate (open loop: oha's --latency-correction times each request from when it was due,
# so a stalled server is not hidden by a stalled client); then stop the server with Ctrl-C
# (SIGINT) and check that it shut down cleanly. At the end, print one table (light p50, p99,
# p99.9, heavy requests/s, errors per backend) with the targets' verdicts, and write the same
# as an SVG chart.
#
# Bounded: about (WARMUP + DURATION + 3) seconds per backend, 2.5 minutes with the defaults,
# plus the build (and, once, `cargo install oha`, ~10 minutes on 2 cores). Traffic goes to
# 127.0.0.1 only.
#
# Settings (environment): BACKENDS, DURATION (s), WARMUP (s), LIGHT_RATE (req/s),
# LIGHT_CONNECTIONS, HEAVY_CONNECTIONS, PORT, OUT (results folder), SVG (chart path),
# QUIET_WAIT (s), SERVER_ARGS (more flags for every server).
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS=${BACKENDS:-"tokengate tokengate-spread spawn_blocking rayon inline"}
DURATION=${DURATION:-25}
WARMUP=${WARMUP:-3}
LIGHT_RATE=${LIGHT_RATE:-200}
LIGHT_CONNECTIONS=${LIGHT_CONNECTIONS:-32}
HEAVY_CONNECTIONS=${HEAVY_CONNECTIONS:-16}
PORT=${PORT:-18080}
OUT=${OUT:-target/service-bench}
SVG=${SVG:-docs/service.svg}
QUIET_WAIT=${QUIET_WAIT:-60}
SERVER_ARGS=${SERVER_ARGS:-}
OHA_VERSION=1.16.0
# The bench's heavy body (demos/src/service/work.rs, BENCH_HEAVY): ~10 ms of CPU.
HEAVY_BODY='{"from": 1000000000, "count": 10000}'

export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v oha >/dev/null || ! oha --version | grep -q "$OHA_VERSION"; then
    echo "== installing the load generator: cargo install oha $OHA_VERSION"
    cargo install oha --version "$OHA_VERSION" --locked -j 2
fi

echo "== building the service (release)"
cargo build --release -j 2 -p tokengate-demos --example service --example service_report
SERVER=target/release/examples/service
REPORT=target/release/examples/service_report

rm -rf "$OUT"
mkdir -p "$OUT"
server_pid=
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

wait_until_listening() {
    for _ in $(seq 100); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "error: the server exited; its log:" >&2
            cat "$1" >&2
            exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "error: the server is not listening on 127.0.0.1:$PORT after 10 s" >&2
    exit 1
}

# One oha run; its JSON goes to $1, the rest are oha's arguments. One runtime thread each,
# so that the load generators take as little as possible of the 2 cores from the server.
# Its CPU time (jiffies) goes to $1.ticks.
oha_run() {
    local out=$1
    shift
    (
        oha --no-tui --output-format json --worker-threads 1 \
            --wait-ongoing-requests-after-deadline "$@" >"$out"
        awk '{ print $16 + $17 }' "/proc/$BASHPID/stat" >"$out.ticks"
    )
}

# The machine may be shared with other programs. Before each backend the script waits (at
# most QUIET_WAIT seconds) for the machine to be at least 80 % idle over a second; during
# the run it counts the CPU time of the whole machine, of the server and of the two oha
# processes, and reports what other programs took, in % of all cores.
cpu_ticks() { # busy and total jiffies of the whole machine
    awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $2 + $3 + $4 + $7 + $8 + $9, t }' /proc/stat
}
proc_ticks() { # user + system jiffies of process $1, all its threads
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}
wait_until_quiet() {
    local waited=0 busy
    while :; do
        read -r b0 t0 < <(cpu_ticks)
        sleep 1
        read -r b1 t1 < <(cpu_ticks)
        busy=$(((b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1)))
        if ((busy <= 20)); then
            return 0
        fi
        if ((waited >= QUIET_WAIT)); then
            echo "   the machine is still ${busy} % busy after ${QUIET_WAIT}s; going on"
            return 0
        fi
        waited=$((waited + 1))
    done
}
others=()
for backend in $BACKENDS; do
    log="$OUT/$backend.server.log"
    wait_until_quiet
    echo "== $backend: heavy at full speed over $HEAVY_CONNECTIONS connections," \
        "light at $LIGHT_RATE req/s, ${DURATION}s after ${WARMUP}s of warm-up"
    # shellcheck disable=SC2086 # SERVER_ARGS is a list of flags
    "$SERVER" --backend "$backend" --port "$PORT" $SERVER_ARGS >"$log" 2>&1 &
    server_pid=$!
    wait_until_listening "$log"
    read -r busy0 total0 < <(cpu_ticks)
    server0=$(proc_ticks "$server_pid")
    oha_run "$OUT/$backend.heavy.json" -z "$((WARMUP + DURATION))s" -c "$HEAVY_CONNECTIONS" \
        -m POST -T application/json -d "$HEAVY_BODY" "http://127.0.0.1:$PORT/heavy" &
    heavy_pid=$!
    sleep "$WARMUP"
    oha_run "$OUT/$backend.light.json" -z "${DURATION}s" -q "$LIGHT_RATE" \
        -c "$LIGHT_CONNECTIONS" --latency-correction "http://127.0.0.1:$PORT/light?msg=bench"
    wait "$heavy_pid"
    read -r busy1 total1 < <(cpu_ticks)
    server1=$(proc_ticks "$server_pid")
    ours=$((server1 - server0 + $(cat "$OUT/$backend.heavy.json.ticks") + $(cat "$OUT/$backend.light.json.ticks")))
    others+=("$(((busy1 - busy0 - ours) * 100 / (total1 - total0)))")
    echo "${others[-1]}" >"$OUT/$backend.others"
    kill -INT "$server_pid"
    for _ in $(seq 300); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
        echo "error: $backend did not shut down within 30 s of Ctrl-C" >&2
        exit 1
    fi
    wait "$server_pid" || {
        echo "error: $backend exited with status $? on Ctrl-C; its log:" >&2
        cat "$log" >&2
        exit 1
    }
    server_pid=
    grep -q "shut down cleanly" "$log"
    sed -n 's/^calibration: //p' "$log" | sed "s/^/   $backend idle calibration: /"
    echo "   other programs took ${others[-1]} % of the machine during the run"
done
others_range=$(printf '%s\n' "${others[@]}" | sort -n | sed -n '1p;$p' | uniq | paste -sd- -)

# One heavy request's CPU time: the median of the servers' idle calibrations.
heavy_ms=$(sed -n 's/^calibration: .*heavy_ms=//p' "$OUT"/*.server.log | sort -n |
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
caption="$(date -u +%Y-%m-%d), $(nproc)-core $(uname -m), $(free -m | awk '/^Mem:/ { printf "%.0f", $2 / 1024 }') GiB; \
oha $OHA_VERSION: /heavy over $HEAVY_CONNECTIONS connections at full speed, \
/light at $LIGHT_RATE req/s for ${DURATION}s; other programs took $others_range % of the CPU"
echo
echo "== results ($caption)"
echo "one heavy request's CPU time (idle, median): $heavy_ms ms"
echo
"$REPORT" "$OUT" "$heavy_ms" "$SVG" "$caption" | tee "$OUT/table.md"
