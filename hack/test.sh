#!/usr/bin/env bash
# Set up the test environment (virtualenv, engine, registries, images) and run pytest from
# the repository root on two xdist workers. Arguments are passed to pytest, for example
# `hack/test.sh tests/unit -k parse`. The exit status is pytest's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$REPO_ROOT/hack/venv.sh"
bash "$REPO_ROOT/hack/engine.sh"
bash "$REPO_ROOT/hack/registries.sh"
bash "$REPO_ROOT/hack/images.sh"
# TODO: start PostgreSQL here once the PostgreSQL tests exist.

cd "$REPO_ROOT"
exec "$REPO_ROOT/.venv/bin/python" -m pytest -n 2 --dist loadgroup "$@"
