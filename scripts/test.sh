#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's laptop.
#
# Installs what the tests need when it is missing (PostgreSQL, libwbxml's
# wbxml2xml/xml2wbxml, Dovecot with LMTP, Postfix, nginx, Caddy, docker-compose, staticcheck), starts a throwaway PostgreSQL cluster on
# loopback unless one already answers, then runs gofmt, go vet, staticcheck
# and go test -race over every package.
#
# Environment:
#   EASD_TEST_POSTGRES  admin URL of a PostgreSQL server to create test
#                       databases in (default: 127.0.0.1:5432 as postgres if
#                       it answers, else a throwaway cluster on port 55432)
#   EASD_TEST_PG_THROWAWAY=1  always start the throwaway cluster
#   CI                  when set, tests that need a service fail instead of skipping
#   GOTESTFLAGS         extra flags for go test (e.g. -run TestX -v)
#   EASD_FUZZTIME       how long scripts/fuzz.sh runs each fuzz target after the
#                       tests (default 2s; 0 skips)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

command -v go >/dev/null || { echo "Go 1.26 or newer is needed: https://go.dev/dl/ (or the golang package)" >&2; exit 1; }

# --- Debian packages the tests use -----------------------------------------
need=()
command -v wbxml2xml >/dev/null || need+=(libwbxml2-utils)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need+=(postgresql)
command -v psql >/dev/null || need+=(postgresql-client)
command -v dovecot >/dev/null || [ -x /usr/sbin/dovecot ] || need+=(dovecot-imapd)
{ command -v postfix >/dev/null || [ -x /usr/sbin/postfix ]; } && [ -x /usr/lib/dovecot/lmtp ] || need+=(postfix dovecot-lmtpd)
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || need+=(docker-compose)
# The reverse proxies docs/deployment.md configures (TestBehindNginx, TestBehindCaddy).
{ command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } || need+=(nginx)
command -v caddy >/dev/null || need+=(caddy)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # Whatever service a package starts for itself is left alone: the suite
  # uses its own throwaway instances on loopback.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # nginx and caddy enable a service on port 80 where systemd runs; the
  # tests start their own on loopback ports.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now nginx caddy >/dev/null 2>&1 || true
  fi
fi

# Dovecot tells IDLE clients of changes through inotify, one instance per
# IMAP process: the kernel's default of 128 per user is soon taken by the
# test Dovecots (and their other users' processes), after which Dovecot
# falls back to polling every 30 s and push tests time out. Raise it when
# we may (best effort; containers may refuse).
if [ "$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 0)" -lt 1024 ]; then
  as_root sysctl -q -w fs.inotify.max_user_instances=1024 2>/dev/null || say "cannot raise fs.inotify.max_user_instances; push tests may be slow"
fi

# --- PostgreSQL ----------------------------------------------------------------
cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c" || true; done' EXIT

pg_answers() { psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

if [ -z "${EASD_TEST_POSTGRES:-}" ]; then
  url="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
  if [ -z "${EASD_TEST_PG_THROWAWAY:-}" ] && pg_answers "$url"; then
    EASD_TEST_POSTGRES=$url
  else
    initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
    [ -n "$initdb" ] || initdb=$(command -v initdb)
    bindir=$(dirname "$initdb")
    dir=$(mktemp -d /tmp/easd-pg.XXXXXX)
    port=55432
    say "starting a throwaway PostgreSQL cluster in $dir on 127.0.0.1:$port"
    run_pg=()
    if [ "$(id -u)" = 0 ]; then
      # PostgreSQL refuses to run as root.
      id postgres >/dev/null 2>&1 || useradd --system --home "$dir" postgres
      chown postgres "$dir"
      run_pg=(runuser -u postgres --)
    fi
    "${run_pg[@]}" "$initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    "${run_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null ||
      { cat "$dir/server.log" >&2; exit 1; }
    cleanup+=("${run_pg[*]} $bindir/pg_ctl -D $dir/data -m immediate stop >/dev/null; rm -rf $dir")
    EASD_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  fi
fi
export EASD_TEST_POSTGRES
pg_answers "$EASD_TEST_POSTGRES" || { echo "PostgreSQL at $EASD_TEST_POSTGRES does not answer" >&2; exit 1; }

# --- Go tools ------------------------------------------------------------------
gobin=$(go env GOPATH)/bin
export PATH="$gobin:$PATH"
if ! staticcheck -version 2>/dev/null | grep -q '0.8.2\|2026'; then
  say "installing staticcheck v0.8.2"
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi

# --- checks and tests ----------------------------------------------------------
say "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
[ -z "$unformatted" ] || { echo "gofmt needed on: $unformatted" >&2; exit 1; }
say "docker-compose.yml"
if docker compose version >/dev/null 2>&1; then
  EASD_DB_PASSWORD=x docker compose --profile mail config -q
else
  EASD_DB_PASSWORD=x docker-compose --profile mail config -q
fi
say "go vet"
go vet ./...
say "staticcheck"
staticcheck ./...
say "go test -race (PostgreSQL: ${EASD_TEST_POSTGRES%%\?*})"
# shellcheck disable=SC2086
go test -race -count=1 -timeout 15m ${GOTESTFLAGS:-} ./...
# Every fuzz target for a few seconds (EASD_FUZZTIME; 0 skips): crashers found
# before are in testdata/fuzz and already ran above; this looks a little further.
if [ "${EASD_FUZZTIME:-2s}" != 0 ]; then
  say "fuzz (every target, ${EASD_FUZZTIME:-2s} each)"
  bash scripts/fuzz.sh "${EASD_FUZZTIME:-2s}"
fi
