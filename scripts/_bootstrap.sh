#!/usr/bin/env bash
# Shared by scripts/serve and scripts/test: make a virtualenv in .venv and install the
# locked dependencies into it (requirements/run.txt or requirements/test.txt, every
# package pinned with its hashes), then the project itself (editable, no dependency
# resolution). Needs only python3 (>= 3.10) with venv. Refresh the locks with scripts/lock.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TOKENGINX_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
case "$1" in
  test) LOCK="$ROOT/requirements/test.txt" ;;
  *) LOCK="$ROOT/requirements/run.txt" ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.tokenginx-installed-$1"
if [ ! -f "$stamp" ] || [ "$LOCK" -nt "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install --quiet --require-hashes -r "$LOCK"
  # The build backend comes from the lock too, so no unpinned download happens here.
  "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$ROOT"
  touch "$stamp"
fi
