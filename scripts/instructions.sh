#!/usr/bin/env bash
# The instruction-count benchmark (figures I1-I3 of DESIGN.md): instructions per fork and per
# task under `valgrind --tool=callgrind`, which counts instructions exactly, so machine load
# does not move them as it moves wall-clock figures.
#
# Each workload of `benches/examples/icount.rs` runs at two sizes; a figure is the difference
# of the instruction totals divided by the difference of the sizes, so that start-up and
# shut-down cancel. Threads are counted apart (`--separate-threads=yes`):
#
# - fork-join (fib with a fork at every call from fib(3) up, on one worker): the forking
#   thread's instructions per fork, and the same minus the serial recursion's (the work);
# - fire-and-forget empty tasks from the main thread: the submitter's instructions per task
#   (the main thread) and the workers' (every other thread); on a ring with room for every
#   task (each token and its cell used once), and on a 4,096-token ring (both reused, the
#   submitter waiting when the ring is dry); and the same with every handle kept and then
#   joined by the submitter, on 1,024 tokens (most outcomes outlive their token's next use).
#
# Usage: bash scripts/instructions.sh   (from the repository root; prints a Markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null 2>&1; then
  echo "valgrind not installed: instruction counts skipped"
  exit 0
fi

echo "+ cargo build --release -p tokengate-benches --example icount" >&2
cargo build --release -p tokengate-benches --example icount >&2
bin=target/release/examples/icount
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

FIB_SIZES=(18 24)
# Both sizes get the same ring (65,536 tokens: `icount` sizes it to hold every task), so that
# building and dropping it cancels in the difference.
TASK_SIZES=(40000 60000)

# run MODE SIZE: runs one workload under callgrind; prints its forks or tasks, then one line
# "thread instructions" per thread (thread 1 is the main thread).
run() {
  local mode=$1 size=$2
  valgrind --tool=callgrind --separate-threads=yes \
    --callgrind-out-file="$out/$mode.$size.%p" "$bin" "$mode" "$size" 2>"$out/$mode.$size.log" |
    awk '{print $NF}'
  awk '/^thread:/ { t = $2 } /^totals:/ { print t, $2 }' "$out/$mode.$size".*
}

# delta MODE SMALL LARGE: prints "units main others busiest": the differences between the two
# sizes of the forks or tasks, of the main thread's instructions, of every other thread's, and
# of the thread whose instructions grew most (the one that forks).
delta() {
  local mode=$1
  { run "$mode" "$2"; echo; run "$mode" "$3"; } | awk '
    BEGIN { part = 0; line = 0 }
    /^$/ { part = 1; line = 0; next }
    { line++ }
    line == 1 { units[part] = $1; next }
    { ir[part, $1] = $2; threads[$1] = 1 }
    END {
      for (t in threads) {
        d = ir[1, t] - ir[0, t]
        if (t == 1) main = d; else others += d
        if (d > busiest) busiest = d
      }
      printf "%d %d %d %d\n", units[1] - units[0], main, others, busiest
    }'
}

echo "+ valgrind --tool=callgrind --separate-threads=yes $bin MODE SIZE (sizes: fib ${FIB_SIZES[*]}, tasks ${TASK_SIZES[*]})" >&2
read -r s_units _ _ s_max < <(delta serial "${FIB_SIZES[@]}")
echo
echo "| per fork, fib with a fork at every call from fib(3) up, one worker | instructions (forking thread) | beyond the serial work |"
echo "| --- | ---: | ---: |"
for mode in join handle free fifo rayon chili; do
  read -r units _ _ max < <(delta "$mode" "${FIB_SIZES[@]}")
  case $mode in
    join) name='tokengate `join`' ;;
    handle) name='tokengate `submit` + handle `join` (an `Arc<Runtime>` cloned into each fork)' ;;
    free) name='tokengate `spawn` (the free function) + handle `join`' ;;
    fifo) name='tokengate `spawn_fifo` + handle `join`' ;;
    rayon) name='`rayon::join` (1-thread pool, `install`)' ;;
    chili) name='chili `Scope::join` (1-thread pool)' ;;
  esac
  awk -v n="$name" -v u="$units" -v m="$max" -v su="$s_units" -v sm="$s_max" \
    'BEGIN { printf "| %s | %.0f | %.0f |\n", n, m / u, m / u - sm / su }'
done
echo
echo "| per fire-and-forget empty task from the main thread, one worker | submitter | workers |"
echo "| --- | ---: | ---: |"
for mode in submit submit_reuse joined batch channel; do
  read -r units main others _ < <(delta "$mode" "${TASK_SIZES[@]}")
  case $mode in
    submit) name='tokengate `submit`, handle dropped' ;;
    submit_reuse) name='the same on a 4,096-token ring (tokens and cells reused)' ;;
    joined) name='tokengate `submit` on 1,024 tokens, every handle kept, then all joined (the submitter joins)' ;;
    batch) name='tokengate `submit_batch` of all of them, handles dropped' ;;
    channel) name='crossbeam-channel pool (boxed closures)' ;;
  esac
  awk -v n="$name" -v u="$units" -v a="$main" -v b="$others" \
    'BEGIN { printf "| %s | %.0f | %.0f |\n", n, a / u, b / u }'
done
