#!/usr/bin/env bash
# Runs make targets one after another, stops at the first that fails, and records how long each
# took in .local/stage-times.txt (appended), which .ci/run prints at its end.
# Usage: stages.sh TARGET...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
times="$root/.local/stage-times.txt"
mkdir -p "$root/.local"
for target in "$@"; do
  echo "== make $target"
  start=$(date +%s)
  status=0
  make --no-print-directory -C "$root" "$target" || status=$?
  printf '%-14s %5d s%s\n' "$target" "$(($(date +%s) - start))" "$([ "$status" = 0 ] || echo "  FAILED ($status)")" >>"$times"
  [ "$status" = 0 ] || exit "$status"
done
