#!/usr/bin/env bash
# Every build step of npc-sync.
#
#   ./build.sh          set up what is missing, build, run the demo scenario
#   ./build.sh test     every test (what CI runs)
#   ./build.sh bench    the benchmarks (ratios measured in one run)
#   ./build.sh setup    only install what is missing
#   ./build.sh roblox   regenerate pkg/roblox (the ModuleScripts Roblox developers use)
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
  setup_luau_lint
  setup_node
  setup_postgres
}

# ---- Luau bridge lint: StyLua (Luau syntax) and selene over luau-bridge/src and examples ----
STYLUA_VERSION="2.6.0"
SELENE_VERSION="0.31.0"

# selene parses Luau only when built with its default `roblox` feature: a build without it
# (or none) is replaced.
selene_reads_luau() {
  command -v selene >/dev/null 2>&1 || return 1
  local d
  d=$(mktemp -d)
  printf 'std = "luau"\n' >"$d/selene.toml"
  printf 'local x: number = 1\nx += 1\nprint(x)\n' >"$d/probe.luau"
  local ok=0
  (cd "$d" && selene probe.luau >/dev/null 2>&1) || ok=1
  rm -rf "$d"
  return "$ok"
}

setup_luau_lint() {
  step "Luau lint tools (StyLua $STYLUA_VERSION with Luau syntax, selene $SELENE_VERSION)"
  command -v stylua >/dev/null 2>&1 ||
    cargo install stylua --version "$STYLUA_VERSION" --features luau --locked
  selene_reads_luau ||
    cargo install selene --version "$SELENE_VERSION" --locked --force
  stylua --version
  selene --version
}

lint_luau() {
  step "Luau bridge and examples: StyLua and selene clean"
  (
    cd luau-bridge
    stylua --check src examples
    # selene lints the files it is given (a directory would only yield its *.lua files)
    find src examples -name '*.luau' -print0 | xargs -0 selene
  )
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
  roblox
  build_node
}

# ---- pkg/roblox: the core as ModuleScripts (luau-bridge/ABI.md) plus the Luau bridge ----
# The committed files are what this generates with this rustc; another version emits other
# (equally valid) wasm, so the diff check of `./build.sh test` needs this one.
LUAU_RUSTC="1.95.0"
# Studio plugins (Rojo live sync, script.Source) cannot write a script longer than this.
ROBLOX_MAX_CHARS=200000
# Each generated chunk stays below this, leaving room under the limit.
ROBLOX_SPLIT_CHARS=190000

# cargo of the pinned rustc: the default one if it is that version, else rustup's.
luau_cargo() {
  if rustc --version | grep -q "^rustc $LUAU_RUSTC "; then
    cargo "$@"
  elif command -v rustup >/dev/null 2>&1; then
    rustup toolchain list | grep -q "^$LUAU_RUSTC" ||
      rustup toolchain install "$LUAU_RUSTC" --profile minimal --target wasm32v1-none
    cargo "+$LUAU_RUSTC" "$@"
  else
    echo "pkg/roblox is generated with rustc $LUAU_RUSTC; found $(rustc --version) and no rustup" >&2
    return 1
  fi
}

roblox() {
  step "pkg/roblox: core (wasm32v1-none, profile luau) -> wasm-to-luau -> ModuleScripts + bridge"
  # bulk memory: the core's copies become `memory.copy` (one `buffer.copy` in Luau) instead
  # of compiler_builtins' byte loops, 62 % of the routine batch's poll (ABI.md "Measured")
  RUSTFLAGS="-C target-feature=+bulk-memory" \
    luau_cargo build --profile luau -p npc-sync-luau --lib --target wasm32v1-none
  cargo build --release -p wasm-to-luau --bin wasm-to-luau
  local out=pkg/roblox
  rm -rf "$out"
  mkdir -p "$out"
  ./target/release/wasm-to-luau target/wasm32v1-none/luau/npc_sync_luau.wasm --native \
    --split-chars "$ROBLOX_SPLIT_CHARS" -o "$out/NpcSyncCore.luau"
  if [ -d luau-bridge/src ]; then
    cp -R luau-bridge/src/. "$out/"
  fi
  cp luau-bridge/pkg-roblox-README.md "$out/README.md"
  local f n
  for f in "$out"/*.luau; do
    n=$(wc -m <"$f")
    if [ "$n" -ge "$ROBLOX_MAX_CHARS" ]; then
      echo "$f: $n characters; a ModuleScript must stay under $ROBLOX_MAX_CHARS" >&2
      return 1
    fi
  done
  wc -m "$out"/*.luau
}

roblox_check() {
  roblox
  step "pkg/roblox is what the sources generate (git diff)"
  if ! git diff --exit-code --stat -- pkg/roblox || [ -n "$(git status --porcelain -- pkg/roblox)" ]; then
    git status --short -- pkg/roblox
    echo "pkg/roblox differs from what the sources generate: run ./build.sh roblox and commit it" >&2
    return 1
  fi
}

# ----- the Node package (pkg/node) -----

# wasm-pack uses the installed wasm-bindgen CLI only if it matches the crate's pin.
WASM_BINDGEN_VERSION=0.2.130

setup_node() {
  step "Node tools: node, wasm-bindgen CLI $WASM_BINDGEN_VERSION, wasm-pack"
  if ! command -v node >/dev/null 2>&1; then
    echo "node is missing: install Node 20 or later (https://nodejs.org)" >&2
    exit 1
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $WASM_BINDGEN_VERSION"; then
    # Not --locked: the CLI's lockfile pins a webpki-roots the registry may not serve.
    cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION"
  fi
  command -v wasm-pack >/dev/null 2>&1 || cargo install wasm-pack
  echo "node $(node --version), $(wasm-bindgen --version), $(wasm-pack --version)"
}

build_node() {
  step "pkg/node: the npm package (wasm-pack build --target nodejs)"
  # The crate js/ links the core with feature `js`; wasm-opt is off in its metadata.
  wasm-pack --quiet build js --release --target nodejs --out-dir ../pkg/node
  ls -l pkg/node/*.wasm pkg/node/*.js pkg/node/*.d.ts
}

test_node() {
  step "Node tests (node --test over tests/node, loading pkg/node)"
  node --test tests/node/*.test.mjs
}

compare_traces() {
  step "differential traces: every runtime's output byte-identical to the native one"
  local runtimes=(node luau)
  local failed=0 n=0 t name rt
  for t in tests/traces/*.jsonl; do
    name=$(basename "$t" .jsonl)
    n=$((n + 1))
    for rt in "${runtimes[@]}"; do
      if ! cmp "target/traces/$name.native.out" "target/traces/$name.$rt.out"; then
        diff -u "target/traces/$name.native.out" "target/traces/$name.$rt.out" | head -n 20 || true
        failed=$((failed + 1))
      fi
    done
  done
  echo "traces: $n traces, runtimes native ${runtimes[*]}, $failed differences"
  [ "$failed" -eq 0 ]
}

# One `frame runtime=... npcs=N ...` line per case: native (public Rust API), node
# (pkg/node), luau-interp and luau-native (NpcSync over the core, from pkg/roblox). The bare
# Luau facade's figures follow as `facade runtime=...` lines (extra information).
bench_frame() {
  step "frame cost: 100 and 1,000 NPCs each changing a status field every frame, plus polling"
  cargo bench -p npc-sync --bench frame
  node benches/frame.mjs
  roblox
  step "frame cost in Luau through NpcSync (pkg/roblox), interpreted and native"
  cargo bench -p npc-sync-luau-harness --bench bridge_frame
  step "the bare Luau facade (no bridge), for comparison"
  cargo bench -p npc-sync-luau --bench luau_frame
}

# The demo (issue 10 item 4): the simulator's combat scenario driven through the generated
# ModuleScript (pkg/roblox's NpcSync in the harness's Luau VM, its HttpService making real
# HTTP calls) against the batch endpoint server (npc-sync-gateway, SQLite in a temp dir, a
# Letta stand-in behind it), faults off; the e2e checks judge it (e2e/). 100 NPCs for 180
# simulated seconds take about 3 minutes on this 2-core machine; DEMO_NPCS and DEMO_SECONDS
# run another size (DEMO_SECONDS=600: the simulator's figures' length, about 10 minutes).
DEMO_NPCS="${DEMO_NPCS:-100}"
DEMO_SECONDS="${DEMO_SECONDS:-180}"

demo() {
  step "demo: $DEMO_NPCS NPCs in combat for $DEMO_SECONDS simulated seconds through pkg/roblox (Luau) against npc-sync-gateway"
  mkdir -p target/demo
  ./target/release/npc-sync-e2e --scenarios combat --npcs "$DEMO_NPCS" --seconds "$DEMO_SECONDS" \
    --faults off --targets batch --runtimes luau --timeline target/demo/timeline.json
  demo_report
}

# The report of the demo's timeline (format: docs/demo-timeline.md), with the frame bench's
# cost by runtime when `./build.sh bench` has written it. Ends by printing the report's path.
demo_report() {
  step "demo report: plots of the run (plotters), the summary table, then the report's path"
  local bench=()
  if [ -f target/bench/summary.json ]; then
    bench=(--bench target/bench/summary.json)
  fi
  ./target/release/npc-sync-demo-report --timeline target/demo/timeline.json "${bench[@]}" \
    -o target/demo/report.html
}

# tests/bench/HandQueue.luau (the hand-written queue of the frame bench), with luau-bridge's
# StyLua and selene settings.
lint_bench_luau() {
  step "tests/bench: StyLua and selene clean"
  (
    cd luau-bridge
    stylua --check --config-path stylua.toml ../tests/bench
    selene ../tests/bench/*.luau
  )
}

lint() {
  step "format and lint"
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --release -- -D warnings
  step "the core builds as no_std WebAssembly 1.0 (no clock, no I/O can creep in)"
  cargo build --release -p npc-sync --lib --target wasm32v1-none
  cargo clippy --release -p npc-sync-luau --lib --target wasm32v1-none -- -D warnings
  lint_luau
  lint_bench_luau
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

# Long fuzz runs (the bounded ones are part of the tests); FUZZ_SEED picks another stream.
fuzz() {
  step "fuzzing: the core's API against the model, then the Luau facade against the native one"
  NPC_FUZZ_CASES="${FUZZ_CORE_CASES:-20000}" NPC_FUZZ_SEED="${FUZZ_SEED:-1}" \
    cargo test --release -p npc-sync --test fuzz_core -- --nocapture
  NPC_FUZZ_LUAU_CASES="${FUZZ_LUAU_CASES:-200}" NPC_FUZZ_SEED="${FUZZ_SEED:-1}" \
    cargo test --release -p npc-sync-luau --test fuzz_luau -- --nocapture
}

# ---- end-to-end runs (e2e/, issue 10): every simulator scenario through pkg/roblox (Luau)
# and pkg/node, faults off and on, against the batch endpoint server and a Letta stand-in.
# Bigger runs: ./target/release/npc-sync-e2e --npcs 50 (see e2e/src/bin/npc-sync-e2e.rs).
e2e() {
  step "end-to-end runs: 6 scenarios x faults off/on x batch/letta x luau/node"
  (cd luau-bridge && stylua --check ../e2e/luau && selene ../e2e/luau/driver.luau)
  cargo build --release -p npc-sync-e2e -p npc-sync-gateway --bins
  cargo build --release -p npc-sync --bin npc-sync-sim
  [ -f pkg/node/npc_sync_node.js ] || build_node
  ./target/release/npc-sync-e2e
}

bench() {
  step "benchmarks"
  cargo bench -p npc-sync --bench queue
  bench_frame
  cargo bench -p npc-sync-gateway --bench gateway
  if [ -d luau-bridge/transpiler/benches ]; then
    cargo bench -p wasm-to-luau
  fi
  bench_versus
}

# Issue 10: the ModuleScript against tests/bench/HandQueue.luau on one trace (interpreted,
# native), the core natively and in Node on it, and requests per minute naive against
# npc-sync per simulator scenario; writes target/bench/summary.json and prints the tables.
bench_versus() {
  step "frame cost against a hand-written Luau queue, same trace (target/bench/summary.json)"
  cargo build --release --bin npc-sync-sim
  cargo bench -p npc-sync-luau-harness --bench versus
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
    roblox_check
    run_tests
    build_node
    test_node
    compare_traces
    e2e
    ;;
  e2e) e2e ;;
  roblox) roblox ;;
  fuzz) fuzz ;;
  bench)
    setup
    build_node
    bench
    ;;
  *)
    echo "usage: ./build.sh [all|setup|build|demo|test|bench|roblox|fuzz|e2e]" >&2
    exit 2
    ;;
esac
