#!/usr/bin/env bash
# Run the dockwright daemon against the local engine, with the SQLite database
# dockwright.db in the current directory (the default database_url).
# Arguments are passed to `dockwright run`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$REPO_ROOT/hack/venv.sh"
bash "$REPO_ROOT/hack/engine.sh"

exec "$REPO_ROOT/.venv/bin/dockwright" run "$@"
