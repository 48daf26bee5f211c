#!/usr/bin/env bash
# Push benchmark of issue #7: builds easd and the load generator
# (bench/push/load), starts a throwaway Dovecot (internal/testenv, limits
# raised) and `easd serve --auth imap` as a separate process whose IMAP
# traffic crosses a counting proxy, then runs the generator as a third
# process: devices set up and parked with a Ping each, easd's RSS per
# parked device, push latency from IMAP APPEND to the Ping answer, and
# easd's idle cost. Prints Markdown tables.
#
# Usage: bench/push/run.sh [driver flags]
#   bench/push/run.sh              # RSS at 1,000 and 10,000 parked; latency at 1,000; idle at 10,000
#   bench/push/run.sh -smoke       # 200 devices, every phase, in about a minute
#   bench/push/run.sh -rss 1000 -latency 1000 -idle 0 -appends 300
# Flags (see parseBenchFlags in bench_test.go): -rss, -latency, -idle (device
# counts), -per-user 10, -appends 300, -rate 10, -grace 15s, -window 60s,
# -reap-wait 6m, -heartbeat 1800, -concurrency 48, -park-rate 250, -keep-conns, -settle 5s,
# -easd-arg FLAG (repeatable, e.g. -easd-arg --imap-watch-sweep=1m), -run-timeout 25m.
#
# Environment: EASD_BENCH_OUT=FILE also writes the Markdown to FILE;
# EASD_BENCH_LOG=FILE copies easd's log to FILE.<devices>; EASD_BENCH_PROFILE=DIR saves
# easd's heap profile and goroutine dump there once the devices are parked.
# Needs Dovecot (apt-get install dovecot-imapd), as scripts/test.sh installs,
# and an open-file hard limit above twice the device count.
set -euo pipefail
cd "$(dirname "$0")/../.."

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
tmp=$(mktemp -d /tmp/easd-pushbench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
echo "== building easd and the load generator" >&2
go build -o "$tmp/easd" ./cmd/easd
go build -o "$tmp/load" ./bench/push/load

echo "== running the benchmark (progress on stderr, tables on stdout)" >&2
EASD_BENCH=1 EASD_BENCH_BIN="$tmp/easd" EASD_BENCH_LOAD="$tmp/load" EASD_BENCH_ARGS="$*" \
  go test -count=1 -timeout 90m -run '^TestBench$' -v ./bench/push
