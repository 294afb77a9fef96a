#!/usr/bin/env bash
# Shared by scripts/serve and scripts/test: make a virtualenv in .venv with the
# project installed (editable). Needs only python3 (>= 3.10) with venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TOKENGINX_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.tokenginx-installed-$1"
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  if [ "$1" = "test" ]; then
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[test]"
  else
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT"
  fi
  touch "$stamp"
fi
