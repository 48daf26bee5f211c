#!/usr/bin/env bash
# Runs every fuzz target of the module, one after the other, for a given
# time each: `scripts/fuzz.sh 2s` in CI (scripts/test.sh), minutes by hand.
#
#   scripts/fuzz.sh [DURATION]     DURATION as go test -fuzztime: 2s (default), 10m, 5000x
#
# Targets are found by grepping the *_test.go files for `func FuzzX(f *testing.F)`;
# each runs as
#   go test -run '^$' -fuzz '^FuzzX$' -fuzztime DURATION -parallel P ./pkg
# and the script fails if any of them fails (a crasher is written to
# pkg/testdata/fuzz/FuzzX/ by go test: commit it with the fix), but for Go
# 1.26's spurious "context deadline exceeded" at the end of -fuzztime with
# no failing input, which is reported as "flake". New
# coverage-expanding inputs stay in $(go env GOCACHE)/fuzz; copy the ones
# worth keeping into the package's testdata/fuzz/FuzzX/.
#
# Environment:
#   FUZZ_PARALLEL  workers per target (-parallel); default: the number of CPUs
#   FUZZ_MATCH     extended regexp on "pkg/dir FuzzName": run only those targets
#   FUZZ_NICE      run the fuzzers under nice -n 19 (for long runs on a shared machine)
#   FUZZ_LOGDIR    keep each target's output there, with /usr/bin/time -v when
#                  installed, and the peak RSS of its fuzzing worker process
set -euo pipefail
cd "$(dirname "$0")/.."

dur=${1:-2s}
par=${FUZZ_PARALLEL:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
logdir=${FUZZ_LOGDIR:-}
[ -z "$logdir" ] || mkdir -p "$logdir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "dir name" per target, sorted.
mapfile -t targets < <(
  grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
    sed -E 's#^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1 \2#' |
    grep -Ev '^(vendor|testdata)/' | sort -u |
    { if [ -n "${FUZZ_MATCH:-}" ]; then grep -E "$FUZZ_MATCH" || true; else cat; fi; }
)
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no fuzz targets found" >&2; exit 1; }

# descendants PID: the process ids under PID, at any depth.
descendants() {
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null || true); do
    echo "$c"
    descendants "$c"
  done
}

# peak_rss PID: the largest VmHWM (kB) of the processes under PID running
# with -test.fuzzworker (go test's fuzzing workers), polled until PID exits.
peak_rss() {
  local root=$1 peak=0 p hwm
  while kill -0 "$root" 2>/dev/null; do
    for p in $(descendants "$root"); do
      grep -q -- '-test.fuzzworker' "/proc/$p/cmdline" 2>/dev/null || continue
      hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
      if [ "${hwm:-0}" -gt "$peak" ]; then peak=$hwm; fi
    done
    sleep 1
  done
  echo "$peak"
}

nice=()
[ -z "${FUZZ_NICE:-}" ] || nice=(nice -n 19)
failed=()
start_all=$(date +%s)
printf '%-22s %-22s %6s %12s %5s %9s  %s\n' package target secs execs new workerMB result
for t in "${targets[@]}"; do
  dir=${t% *} name=${t#* }
  log=$tmp/out
  [ -z "$logdir" ] || log="$logdir/${dir//\//_}.$name.log"
  cmd=(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$dur" -parallel "$par" "./$dir")
  timed=()
  if [ -n "$logdir" ] && [ -x /usr/bin/time ]; then
    timed=(/usr/bin/time -v -o "${log%.log}.time")
  fi
  t0=$(date +%s)
  "${timed[@]}" "${nice[@]}" "${cmd[@]}" >"$log" 2>&1 &
  pid=$!
  rss=-
  if [ -n "$logdir" ]; then
    rss=$(( $(peak_rss "$pid") / 1024 ))
  fi
  if wait "$pid"; then
    result=ok
  elif grep -q 'context deadline exceeded' "$log" && ! grep -q -e 'Failing input written to' -e '^panic: ' "$log"; then
    # Go 1.26's fuzz coordinator may report its own -fuzztime deadline as a
    # failure, with no failing input (go.dev/issue/75804, fixed in Go 1.27).
    result=flake
  else
    result=FAIL
    failed+=("$dir $name")
  fi
  secs=$(( $(date +%s) - t0 ))
  # The last progress line: "fuzz: elapsed: 4s, execs: 1234 (308/sec), new interesting: 2 (total: 40)".
  last=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -n 1 || true)
  execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
  new=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
  printf '%-22s %-22s %6s %12s %5s %9s  %s\n' "$dir" "$name" "$secs" "${execs:--}" "${new:--}" "$rss" "$result"
  if [ "$result" = FAIL ]; then
    sed 's/^/    /' "$log" | tail -n 60 >&2
  fi
done
echo "fuzz.sh: ${#targets[@]} targets, $dur each, $(( $(date +%s) - start_all ))s in all"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'fuzz.sh: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
