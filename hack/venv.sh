#!/usr/bin/env bash
# Create the virtualenv .venv at the repository root and install the project into it in
# editable mode with the test and postgres extras.
#
# The install is skipped while pyproject.toml has the hash stored in .venv by the last
# successful install.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VENV="$REPO_ROOT/.venv"
STAMP="$VENV/.dockwright-pyproject.sha256"

if [ ! -x "$VENV/bin/python" ]; then
    ensure_commands python3:python3
    log "creating $VENV"
    # Debian splits ensurepip into python3-venv; install it only when venv creation fails.
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        ensure_packages python3-venv
        python3 -m venv "$VENV"
    fi
fi

pyproject_hash="$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$pyproject_hash" ]; then
    log "$VENV is up to date with pyproject.toml"
    exit 0
fi

log "installing the project into $VENV"
quietly "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
quietly "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$REPO_ROOT[test,postgres]"
printf '%s\n' "$pyproject_hash" >"$STAMP"
log "installed; $("$VENV/bin/python" --version)"
