#!/bin/sh
# Installs the Debian packages sentinel's tests use, when they are missing:
#   prometheus               -> promtool (rule checks and unit tests) and prometheus
#                               (PromQL parse checks of alerts/ and dashboards/)
#   prometheus-alertmanager  -> alertmanager and amtool (notify tests)
# Needs root (CI on Debian bookworm runs as root); otherwise says what is missing and
# exits 0, and the tests that need these binaries skip.
set -eu

missing=""
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 \
    || missing="$missing prometheus"
{ command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1; } \
    || missing="$missing prometheus-alertmanager"

if [ -z "$missing" ]; then
    echo "install-system-deps: promtool, prometheus and alertmanager are installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: missing:$missing (not root; install them with apt-get, or the tests that need them skip)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: missing:$missing (no apt-get on this system; the tests that need them skip)" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086  # the package list is meant to split into words
apt-get install -y --no-install-recommends $missing
# Debian starts the services when installed on a system with an init; the tests run
# their own instances on free ports, so stop them if they were started.
for svc in prometheus prometheus-alertmanager; do
    if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
done
echo "install-system-deps: installed:$missing"
