#!/usr/bin/env bash
# The simulator acceptance sweep of issue 7: every scenario, seeds 1 to 3, fail rates 0,
# 0.3 and 0.6, 300 simulated seconds (100 NPCs); then `mixed` with 1,000 NPCs at fail
# rates 0 and 0.3, which must drain within the simulator's limit. Every run must show 0
# lost, 0 stale overwrites, 0 split groups, 0 dependency violations, 0 freshness
# violations, and converge. Prints one line per run and a summary; exits 1 on any
# violation.
#
#   scripts/sim-sweep.sh [npcs] [seconds]      (defaults 100 and 300)
#
# About 10 minutes on 2 shared cores. Not part of `./build.sh test` (too long);
# `tests/simulator.rs` runs a bounded subset on every test run.
set -euo pipefail
cd "$(dirname "$0")/.."
npcs=${1:-100}
seconds=${2:-300}
cargo build --release --bin npc-sync-sim >/dev/null
# A private copy: a rebuild while the sweep runs must not change the binary under it.
sim=$(mktemp -d)/npc-sync-sim
cp ./target/release/npc-sync-sim "$sim"
bad=0
runs=0

field() { grep -o "\"$1\":[^,}]*" <<<"$2" | cut -d: -f2; }

check() {
  local label=$1 json=$2
  runs=$((runs + 1))
  local ok=1
  for k in lost stale_overwrites split_groups dependency_violations freshness_violations; do
    [ "$(field "$k" "$json")" = 0 ] || ok=0
  done
  [ "$(field converged "$json")" = true ] || ok=0
  [ "$(field drained_after_s "$json")" != null ] || ok=0
  printf '%-44s lost=%s stale=%s split=%s dep=%s fresh=%s converged=%s drained_after_s=%s critical_p99_s=%s max_calls_min=%s %s\n' \
    "$label" "$(field lost "$json")" "$(field stale_overwrites "$json")" \
    "$(field split_groups "$json")" "$(field dependency_violations "$json")" \
    "$(field freshness_violations "$json")" "$(field converged "$json")" \
    "$(field drained_after_s "$json")" "$(field critical_latency_p99_s "$json")" \
    "$(field max_requests_per_min "$json")" "$([ $ok = 1 ] && echo ok || echo VIOLATION)"
  [ $ok = 1 ] || bad=$((bad + 1))
}

for scenario in patrol combat tool-chain group-churn chat mixed; do
  for seed in 1 2 3; do
    for fail in 0 0.3 0.6; do
      json=$($sim --scenario "$scenario" --npcs "$npcs" --seconds "$seconds" \
        --fail-rate "$fail" --seed "$seed" --json 2>/dev/null | tail -1)
      check "$scenario seed=$seed fail=$fail" "$json"
    done
  done
done
for fail in 0 0.3; do
  json=$($sim --scenario mixed --npcs 1000 --seconds "$seconds" --fail-rate "$fail" \
    --seed 1 --json 2>/dev/null | tail -1)
  check "mixed npcs=1000 seed=1 fail=$fail" "$json"
done
echo "sweep: $runs runs, $bad with a violation"
[ "$bad" = 0 ]
