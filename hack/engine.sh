#!/usr/bin/env bash
# Start the local Docker engine (dockerd) unless one already responds to `docker info`.
#
# A running engine is left alone. Otherwise dockerd is started in the background with its log
# and pid file in the state dir. The first storage driver and iptables setting that let it
# start are stored there and reused on the next start.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DOCKERD_LOG="$STATE_DIR/dockerd.log"
DOCKERD_PID="$STATE_DIR/dockerd.pid"
DOCKERD_OPTIONS_FILE="$STATE_DIR/dockerd.options"
START_TIMEOUT_SECONDS=60

engine_version() {
    docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null
}

if docker info >/dev/null 2>&1; then
    log "engine already running: $(engine_version)"
    exit 0
fi

ensure_commands dockerd:docker.io docker:docker.io iptables:iptables
mkdir -p "$STATE_DIR"

# Start dockerd with the given extra options and wait until it responds.
# Return 1 when it exits or does not respond in time, after stopping it.
try_start() {
    log "starting dockerd $*"
    printf '\n==== %s dockerd %s\n' "$(date -u +%FT%TZ)" "$*" >>"$DOCKERD_LOG"
    setsid dockerd --pidfile "$DOCKERD_PID" "$@" >>"$DOCKERD_LOG" 2>&1 </dev/null &
    local pid=$!

    local deadline=$((SECONDS + START_TIMEOUT_SECONDS))
    until docker info >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "dockerd exited with options: $*"
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "dockerd did not respond within ${START_TIMEOUT_SECONDS}s; stopping pid $pid"
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            return 1
        fi
        sleep 0.5
    done
    return 0
}

# The stored options come first. Then overlay2 with iptables, which works on the Debian 12
# test machines (ext4 root, nf_tables iptables), then fallbacks for kernels without overlayfs
# or without netfilter.
candidates=()
if [ -s "$DOCKERD_OPTIONS_FILE" ]; then
    candidates+=("$(cat "$DOCKERD_OPTIONS_FILE")")
fi
candidates+=(
    "--storage-driver=overlay2"
    "--storage-driver=overlay2 --iptables=false"
    "--storage-driver=vfs"
    "--storage-driver=vfs --iptables=false"
)

for options in "${candidates[@]}"; do
    # shellcheck disable=SC2086  # the options are a word list on purpose
    if try_start $options; then
        printf '%s\n' "$options" >"$DOCKERD_OPTIONS_FILE"
        log "engine running: $(engine_version), options: $options, log: $DOCKERD_LOG"
        exit 0
    fi
done

printf 'Last lines of %s:\n' "$DOCKERD_LOG" >&2
tail -n 30 "$DOCKERD_LOG" >&2
die "dockerd did not start with any of the tried options; read $DOCKERD_LOG"
