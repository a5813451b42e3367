#!/usr/bin/env bash
# Where the server's CPU goes during one phase of the load benchmark.
#
#   bench/profile.sh [BINARY] [OUT] [CONFIG]    (defaults: target/release/tokenhost,
#                                                 /tmp/tokenhost-CONFIG.perf, seed)
#
# Runs bench/run.py with the no-rule phase and CONFIG on ES256, 12 s phases, and records
# the server with `perf record --call-graph dwarf` for 4 s inside CONFIG's phase (after its
# warm-up). Read it with, e.g.:
#   perf report -i OUT --children --sort sym -g none --stdio | less
# Needs Debian's linux-perf (`apt-get install linux-perf`).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/tokenhost}
config=${3:-seed}
out=${2:-/tmp/tokenhost-$config.perf}
bin=$(realpath "$bin")
log=$(mktemp)
python3 bench/run.py --configs "none,$config" --algs ES256 --duration 12 --no-examples \
  --binary "$bin" >"$log" 2>&1 &
run=$!
until grep -q "round 1 none" "$log"; do
  kill -0 "$run" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.5
done
sleep 4  # CONFIG's 2 s warm-up, then into its measured phase
pid=$(pgrep -f "$bin serve" | head -1)
perf record -F 2000 -e cpu-clock -g --call-graph dwarf,16384 -p "$pid" -o "$out" -- sleep 4 >/dev/null 2>&1
wait "$run"
grep "round 1" "$log"
echo "profile: $out"
