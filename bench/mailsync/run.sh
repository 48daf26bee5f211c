#!/usr/bin/env bash
# Mail sync benchmark of issue #5: builds easd, starts a throwaway Dovecot
# (internal/testenv) and `easd serve --auth imap` as a separate process whose
# IMAP traffic crosses a counting proxy, populates the INBOX and runs
# bench/mailsync, printing Markdown tables.
#
# Usage: bench/mailsync/run.sh [mailsync flags]
#   e.g. bench/mailsync/run.sh -messages 2000 -windows 100,512 -clients 20 -duration 10s
# Flags (see `go run ./bench/mailsync -h`): -messages 10000, -windows 100,512,
# -clients 100 (each on its own Dovecot account unless -ka-users is given),
# -duration 30s, -body 4, -ka-messages 50, -timeout 1h.
#
# Environment: EASD_BENCH_OUT=FILE also writes the Markdown to FILE.
# Needs Dovecot (apt-get install dovecot-imapd), as scripts/test.sh installs.
set -euo pipefail
cd "$(dirname "$0")/../.."

tmp=$(mktemp -d /tmp/easd-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
echo "== building easd" >&2
go build -o "$tmp/easd" ./cmd/easd

echo "== running the benchmark (progress on stderr, tables on stdout)" >&2
EASD_BENCH=1 EASD_BENCH_BIN="$tmp/easd" EASD_BENCH_ARGS="$*" \
  go test -count=1 -timeout 3h -run '^TestBench$' -v ./bench/mailsync
