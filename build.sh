#!/usr/bin/env bash
# Every build step of npc-sync.
#
#   ./build.sh          set up what is missing, build, run the demo scenario
#   ./build.sh test     every test (what CI runs)
#   ./build.sh bench    the benchmarks (ratios measured in one run)
#   ./build.sh setup    only install what is missing
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*"; }

setup() {
  step "toolchain"
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is missing: install Rust with rustup first (https://rustup.rs)" >&2
    exit 1
  fi
  if command -v rustup >/dev/null 2>&1; then
    local have
    have=$(rustup component list --installed 2>/dev/null || true)
    for c in rustfmt clippy; do
      grep -q "^$c" <<<"$have" || rustup component add "$c"
    done
    local targets
    targets=$(rustup target list --installed 2>/dev/null || true)
    for t in wasm32-unknown-unknown wasm32v1-none; do
      grep -qx "$t" <<<"$targets" || rustup target add "$t"
    done
  fi
  cargo --version
  setup_postgres
}

# The gateway's tests start their own PostgreSQL cluster from the system's binaries.
setup_postgres() {
  step "PostgreSQL (for npc-sync-gateway's shared-store tests)"
  if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "PostgreSQL binaries present"
    return
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends postgresql
}

build() {
  step "build (release)"
  cargo build --release --workspace
}

demo() {
  step "demo: 100 NPCs in combat for 600 simulated seconds, against a simulated backend"
  ./target/release/npc-sync-sim --scenario combat --npcs 100 --seconds 600
}

lint() {
  step "format and lint"
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --release -- -D warnings
  step "the core builds as no_std WebAssembly 1.0 (no clock, no I/O can creep in)"
  cargo build --release -p npc-sync --lib --target wasm32v1-none
}

run_tests() {
  step "tests (unit, integration, property, simulator, transpiler spec suite)"
  local log
  log=$(mktemp)
  local status=0
  cargo test --workspace --release 2>&1 | tee "$log" || status=$?
  # One closing line for the whole run: the sum of every test binary's result line.
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
       END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
  rm -f "$log"
  return "$status"
}

bench() {
  step "benchmarks"
  cargo bench -p npc-sync --bench queue
  cargo bench -p npc-sync-gateway --bench gateway
  if [ -d luau-bridge/transpiler/benches ]; then
    cargo bench -p wasm-to-luau
  fi
}

case "${1:-all}" in
  all)
    setup
    build
    demo
    ;;
  setup) setup ;;
  build) build ;;
  demo)
    build
    demo
    ;;
  test)
    setup
    lint
    run_tests
    ;;
  bench)
    setup
    bench
    ;;
  *)
    echo "usage: ./build.sh [all|setup|build|demo|test|bench]" >&2
    exit 2
    ;;
esac
