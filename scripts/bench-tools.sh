#!/usr/bin/env bash
# Install the reference tools of the benchmark (restic, borgbackup) and GNU time (the harness measures
# each command's own peak RSS through it) with apt when they are missing.
# Called by `make bench`; idempotent; needs root (or sudo) only when something must be installed.
set -euo pipefail

missing=()
command -v restic >/dev/null 2>&1 || missing+=(restic)
command -v borg >/dev/null 2>&1 || missing+=(borgbackup)
[ -x /usr/bin/time ] || missing+=(time)

if [ "${#missing[@]}" -eq 0 ]; then
    echo "bench-tools: restic, borg and GNU time already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "bench-tools: ${missing[*]} missing and not root (no sudo): install them by hand" >&2
        exit 1
    fi
fi

echo "bench-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}"
command -v restic >/dev/null 2>&1 || { echo "bench-tools: restic still missing after apt-get install" >&2; exit 1; }
command -v borg >/dev/null 2>&1 || { echo "bench-tools: borg still missing after apt-get install" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench-tools: /usr/bin/time still missing after apt-get install" >&2; exit 1; }
echo "bench-tools: $(restic version | head -n1); $(borg --version)"
