#!/usr/bin/env bash
# Runs the stress tests under ThreadSanitizer (nightly, -Zbuild-std). Installs nightly's
# rust-src when missing. Usage: bash scripts/tsan.sh   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup +nightly component list --installed 2>/dev/null | grep -q '^rust-src'; then
  if rustup toolchain list | grep -q '^nightly'; then
    echo "+ rustup +nightly component add rust-src"
    rustup +nightly component add rust-src
  else
    echo "+ rustup toolchain install nightly --component rust-src"
    rustup toolchain install nightly --profile minimal --component rust-src
  fi
fi
target=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/tsan}
export RUSTFLAGS="-Zsanitizer=thread"
export RUSTDOCFLAGS="-Zsanitizer=thread"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
# The 10,000-level nesting test of tests/hostile.rs is skipped: ThreadSanitizer's frames and
# shadow stack do not fit the worker stack it sizes for a plain build (it crashes with SEGV);
# it checks stack depth, not races.
for t in runtime shutdown_race soak miri_smoke operations observe batch hostile reliability local_deque memory join slices task_cells; do
  echo "+ cargo +nightly test -Zbuild-std --target $target --test $t -- --test-threads=1 --skip ten_thousand_nested"
  cargo +nightly test -Zbuild-std --target "$target" --test "$t" -- --test-threads=1 --skip ten_thousand_nested
done
