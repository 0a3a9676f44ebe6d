#!/usr/bin/env bash
# Runs the primitives' unit tests and a small runtime smoke test under miri (undefined
# behaviour, data races, weak-memory effects). Installs nightly's miri when it is missing.
# Usage: bash scripts/miri.sh            (from the repository root)
#        MIRI_SEEDS=0..8 bash scripts/miri.sh   (seed range for the racy tests)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly miri --version >/dev/null 2>&1; then
  if rustup toolchain list | grep -q '^nightly'; then
    echo "+ rustup +nightly component add miri rust-src"
    rustup +nightly component add miri rust-src
  else
    echo "+ rustup toolchain install nightly --component miri rust-src"
    rustup toolchain install nightly --profile minimal --component miri rust-src
  fi
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/miri}
seeds=${MIRI_SEEDS:-0..4}

echo "+ cargo +nightly miri setup"
cargo +nightly miri setup

# The primitives' unit tests, each racy one over several scheduler seeds.
echo "+ MIRIFLAGS=-Zmiri-many-seeds=$seeds cargo +nightly miri test --lib"
MIRIFLAGS="-Zmiri-many-seeds=$seeds" cargo +nightly miri test -p tokengate --lib

# The runtime end to end, small sizes (the tests scale down under cfg(miri)).
echo "+ cargo +nightly miri test --test miri_smoke"
MIRIFLAGS="-Zmiri-many-seeds=0..6" cargo +nightly miri test -p tokengate --test miri_smoke
