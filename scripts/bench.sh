#!/usr/bin/env bash
# Runs every benchmark in scripts/bench/ in name order. Each one measures
# celeriac and its anchor (a bare client, Celery, nginx, PgBouncer, …) in the
# same run and prints a Markdown table with the ratio; the tables are also
# collected in bench-results/ for the README.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench-results
only="${BENCH:-}"
for b in scripts/bench/*.sh; do
  name=$(basename "$b" .sh)
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then continue; fi
  echo "== $name"
  "$b" | tee "bench-results/$name.md"
  echo
done
# The worker table also becomes the README's chart.
if [ -s bench-results/10-worker.md ]; then
  /usr/bin/python3 scripts/bench/chart.py bench-results/10-worker.md docs/bench-worker.svg
fi
