# Shared helpers for the hack/ scripts: paths, output and package installation.
# Sourced, never run; each script stays runnable on its own.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Machine-wide state (engine log and pid, registry configs and storage, image stamps).
# It lives outside the repository because the engine and the registries serve every clone
# on this machine, and outside /tmp because /tmp may be cleaned while they run.
STATE_DIR="${DOCKWRIGHT_DEV_STATE:-/var/lib/dockwright-dev}"

log() {
    printf '%s: %s\n' "$(basename "$0" .sh)" "$*"
}

die() {
    printf '%s: error: %s\n' "$(basename "$0" .sh)" "$*" >&2
    exit 1
}

# Install the given Debian packages when dpkg does not list them as installed.
# `apt-get update` runs only when no script ran it in the last hour (a stamp in the state dir),
# so the scripts of one hack/test.sh run update at most once.
ensure_packages() {
    local package missing=()
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed'; then
            missing+=("$package")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi

    log "installing ${missing[*]}"
    local stamp="$STATE_DIR/apt-update.stamp"
    if [ -z "$(find "$stamp" -mmin -60 2>/dev/null)" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        mkdir -p "$STATE_DIR"
        touch "$stamp"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Install the packages that provide the given commands, for each command that is missing.
# Arguments are COMMAND:PACKAGE pairs.
ensure_commands() {
    local pair missing=()
    for pair in "$@"; do
        if ! command -v "${pair%%:*}" >/dev/null 2>&1; then
            missing+=("${pair#*:}")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        ensure_packages "${missing[@]}"
    fi
}

# Run a command with its output captured; show the output and exit only when it fails.
quietly() {
    local output
    if ! output="$("$@" 2>&1)"; then
        printf '%s\n' "$output" >&2
        die "failed: $*"
    fi
}

# Wait until the command given as arguments succeeds, for at most $1 seconds.
wait_until() {
    local timeout="$1"
    shift
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.5
    done
}
