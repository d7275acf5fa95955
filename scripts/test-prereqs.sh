#!/usr/bin/env bash
# The system packages the test suite drives for real, installed the same way everywhere: `npm test` runs this
# first, and .ci/run runs `npm test`. Each line of NEEDS is: what to check (`cmd:` a command on PATH, `file:` a
# path pattern), the Debian package, why the tests need it. As root with apt-get, what is missing is installed;
# otherwise the run stops here with one message that names what is missing and the command that installs it,
# instead of failing deep inside a test.
set -euo pipefail

NEEDS=(
  "cmd:chromium|chromium|the console's browser tests drive Debian's Chromium (playwright-core downloads no browser)"
  "cmd:bpftrace|bpftrace|the ebpf source's tests run the real bpftrace on this kernel"
  "cmd:xmllint|libxml2-utils|driftwatch verify's JUnit report is validated against the Jenkins/Surefire JUnit XSD with xmllint"
  "cmd:prometheus-alertmanager|prometheus-alertmanager|the Alertmanager sink is tested against a real Alertmanager"
  "cmd:promtool|prometheus|promtool check metrics runs on both processes' /metrics"
  "file:/usr/lib/postgresql/*/bin/pg_ctl|postgresql|the PostgreSQL store's tests start a throwaway server (initdb, pg_ctl; not on PATH)"
)
# PostgreSQL will not run as root: as root, test/helpers/postgres.ts runs it as this user, who owns nothing else.
TEST_USER=driftwatch-test

missing_pkgs=()
missing_why=()
for need in "${NEEDS[@]}"; do
  IFS='|' read -r check pkg why <<<"$need"
  case "$check" in
    cmd:*) command -v "${check#cmd:}" >/dev/null 2>&1 && continue ;;
    file:*) compgen -G "${check#file:}" >/dev/null && continue ;;
  esac
  missing_pkgs+=("$pkg")
  missing_why+=("  - $pkg: $why")
done

is_root=false
[ "$(id -u)" = 0 ] && is_root=true
# tracefs: bpftrace attaches to tracepoints through it; some machines have it unmounted.
tracefs_missing=false
[ -e /sys/kernel/tracing/events ] || tracefs_missing=true

if [ ${#missing_pkgs[@]} -gt 0 ]; then
  if $is_root && command -v apt-get >/dev/null 2>&1; then
    echo "test prerequisites: installing ${missing_pkgs[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # Debian's postgresql package creates a cluster "main" on port 5432 and starts it where it can. The tests
    # start their own servers and need none: a drop-in turns that off for this install only.
    no_cluster=/etc/postgresql-common/createcluster.d/driftwatch-test-prereqs.conf
    if [[ " ${missing_pkgs[*]} " == *" postgresql "* && ! -e $no_cluster ]]; then
      mkdir -p "$(dirname "$no_cluster")"
      echo 'create_main_cluster = off' >"$no_cluster"
      trap 'rm -f "$no_cluster"' EXIT
    fi
    apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
    apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing_pkgs[@]}" >/dev/null
  else
    {
      echo "npm test cannot start: these system packages are missing and cannot be installed from here"
      $is_root || echo "(installing them needs root)"
      command -v apt-get >/dev/null 2>&1 || echo "(there is no apt-get on this machine: install the equivalents with its package manager)"
      printf '%s\n' "${missing_why[@]}"
      echo "Install them with:  sudo apt-get install -y ${missing_pkgs[*]}"
    } >&2
    exit 1
  fi
fi

if $is_root && ! id -u "$TEST_USER" >/dev/null 2>&1; then
  echo "test prerequisites: creating the system user $TEST_USER (PostgreSQL's test servers run as it)"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$TEST_USER"
fi

if $tracefs_missing; then
  if $is_root; then
    mount -t tracefs tracefs /sys/kernel/tracing
  else
    echo "test prerequisites: tracefs is not mounted and mounting it needs root; the ebpf tests will skip (sudo mount -t tracefs tracefs /sys/kernel/tracing)" >&2
  fi
fi
$is_root || echo "test prerequisites: not root, so the tests that run the real bpftrace (eBPF) will skip with that reason" >&2
exit 0
