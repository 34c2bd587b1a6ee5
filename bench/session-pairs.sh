#!/usr/bin/env bash
# A sandboxed session against the same session uncontained, run by turns.
#   bench/session-pairs.sh [PAIRS]   in the repo of `bench/server-fixtures.sh session DIR K`
# (K >= 2 x PAIRS queued thoughts), with the tgs to measure first on PATH. Each pair runs
# `tgs server run --once --no-pr` with TGS_SANDBOX=on (A), then with TGS_SANDBOX=off (B).
exec "$(dirname "$0")/pairs.sh" 'TGS_SANDBOX=on tgs server run --once --no-pr' \
  'TGS_SANDBOX=off tgs server run --once --no-pr' "${1:-12}"
