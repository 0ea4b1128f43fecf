#!/usr/bin/env bash
# Start the two local test registries (Debian's docker-registry, distribution 2.8) on 127.0.0.1.
#
#   localhost:5001  open, no authentication
#   localhost:5002  htpasswd (bcrypt) authentication, user dockwright
#
# A registry whose /v2/ endpoint already responds is left alone. Each registry has its own
# config, storage, log and pid file under the state dir.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REGISTRY_USER="dockwright"
REGISTRY_PASSWORD="dockwright-test-secret"
START_TIMEOUT_SECONDS=30

ensure_commands docker-registry:docker-registry htpasswd:apache2-utils curl:curl

# Print the HTTP status of GET /v2/ on the port, or 000 when nothing responds.
v2_status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/v2/" || true
}

# Succeed when the port serves the registry API, with or without authentication.
registry_responds() {
    local status
    status="$(v2_status "$1")"
    [ "$status" = 200 ] || [ "$status" = 401 ]
}

# Write the config of the registry on port $1; $2 is "open" or "auth".
write_config() {
    local port="$1" mode="$2"
    local dir="$STATE_DIR/registry-$port"
    mkdir -p "$dir/storage"

    cat >"$dir/config.yml" <<CONFIG
version: 0.1
log:
  level: info
  fields:
    service: registry-$port
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  headers:
    X-Content-Type-Options: [nosniff]
CONFIG

    if [ "$mode" = auth ]; then
        if ! htpasswd -vb "$dir/htpasswd" "$REGISTRY_USER" "$REGISTRY_PASSWORD" >/dev/null 2>&1; then
            htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASSWORD" >"$dir/htpasswd"
        fi
        cat >>"$dir/config.yml" <<CONFIG
auth:
  htpasswd:
    realm: dockwright-test
    path: $dir/htpasswd
CONFIG
    fi
}

start_registry() {
    local port="$1" mode="$2"
    local dir="$STATE_DIR/registry-$port"

    if registry_responds "$port"; then
        log "registry on 127.0.0.1:$port ($mode) already running"
        return 0
    fi

    write_config "$port" "$mode"
    printf '\n==== %s docker-registry serve\n' "$(date -u +%FT%TZ)" >>"$dir/registry.log"
    setsid docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$dir/registry.pid"

    if ! wait_until "$START_TIMEOUT_SECONDS" registry_responds "$port"; then
        printf 'Last lines of %s:\n' "$dir/registry.log" >&2
        tail -n 20 "$dir/registry.log" >&2
        die "registry on 127.0.0.1:$port did not respond to /v2/ within ${START_TIMEOUT_SECONDS}s (pid $pid)"
    fi
    log "registry on 127.0.0.1:$port ($mode) started, pid $pid, log: $dir/registry.log"
}

start_registry 5001 open
start_registry 5002 auth

# The auth registry must reject anonymous requests; a 200 here means another server uses
# the port or the config lost its auth section.
status="$(v2_status 5002)"
if [ "$status" != 401 ]; then
    die "registry on 127.0.0.1:5002 returned HTTP $status to an anonymous /v2/ request, expected 401"
fi
