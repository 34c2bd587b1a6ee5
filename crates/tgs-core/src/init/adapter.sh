#!/usr/bin/env bash
# @NAME@.sh: a `tgs agent exec` adapter for @TITLE@, written by
# `tgs server init` (tgs @TGS_VERSION@). Edit it freely: init then leaves it
# alone (unless --force).
#
# Contract (as the Go tgs defined it): flags --return-mode patch_or_text|text,
# --claude-cmd, --prompt-file or --prompt-text, --context-list, --context-glob,
# --out, --suggestions-dir, --verbose, --timeout (each also as -flag and
# --flag=value), and the environment CLAUDE_CMD, RETURN_MODE, TIMEOUT_SEC,
# OUT_PATH, CONTEXT_FILES (newline-separated; tgs resolved the list and glob
# into it), PROMPT_TEXT. The prompt and the list of context paths go to the
# agent; an answer that is a unified diff is saved as a patch in the
# suggestions dir and its path printed, anything else is printed as it is
# (to --out when given). tgs enforces --timeout on the whole process group.
set -euo pipefail

me=$(basename "$0")
return_mode=${RETURN_MODE:-patch_or_text}
# The agent CLI, with any arguments: CLAUDE_CMD or --claude-cmd for Claude Code
# ("claude --model sonnet"), GEMINI_CMD for the Gemini CLI.
agent_cmd=@AGENT_CMD@
prompt_file=""
prompt_text=${PROMPT_TEXT:-}
context_list=""
out=${OUT_PATH:-}
suggestions_dir=tgs/suggestions
verbose=0

while [ $# -gt 0 ]; do
  # Go's flag package accepts -flag value, --flag value and --flag=value.
  case $1 in
    -*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
  esac
  case $1 in
    -verbose | --verbose) verbose=1; shift; continue ;;
  esac
  if [ $# -lt 2 ]; then
    echo "$me: $1 needs a value" >&2
    exit 2
  fi
  case $1 in
    -return-mode | --return-mode) return_mode=$2 ;;
    -claude-cmd | --claude-cmd) @CLAUDE_CMD_FLAG@ ;;
    -prompt-file | --prompt-file) prompt_file=$2 ;;
    -prompt-text | --prompt-text) prompt_text=$2 ;;
    -context-list | --context-list) context_list=$2 ;;
    -context-glob | --context-glob) ;; # expanded by tgs into CONTEXT_FILES
    -out | --out) out=$2 ;;
    -suggestions-dir | --suggestions-dir) suggestions_dir=$2 ;;
    -timeout | --timeout) ;; # enforced by tgs
    *) echo "$me: unknown flag $1" >&2; exit 2 ;;
  esac
  shift 2
done

# The context paths: CONTEXT_FILES, else the --context-list file.
context=${CONTEXT_FILES:-}
if [ -z "$context" ] && [ -n "$context_list" ]; then
  context=$(cat -- "$context_list")
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The request: the prompt (inline text wins over the file), then the paths.
{
  if [ -n "$prompt_text" ]; then
    printf '%s\n' "$prompt_text"
  elif [ -n "$prompt_file" ]; then
    cat -- "$prompt_file"
  else
    echo "$me: no prompt (--prompt-file or --prompt-text)" >&2
    exit 2
  fi
  printf '\nContext files (read them):\n'
  while IFS= read -r f; do
    if [ -n "$f" ]; then printf -- '- %s\n' "$f"; fi
  done <<<"$context"
} >"$work/request"

# Each context file's directory, once, for agents that must be granted access.
dirs=()
while IFS= read -r f; do
  [ -n "$f" ] || continue
  d=$(dirname -- "$f")
  case " ${dirs[*]-} " in
    *" $d "*) ;;
    *) dirs+=("$d") ;;
  esac
done <<<"$context"

@RUN_AGENT@

if [ "$verbose" = 1 ]; then
  echo "$me: $(wc -c <"$work/answer") bytes of answer" >&2
fi

# A unified diff (bare or in a ```diff fence) becomes a patch file.
result=$work/answer
if [ "$return_mode" = patch_or_text ]; then
  awk '/^```(diff|patch)[[:space:]]*$/ { fenced = 1; next }
       fenced && /^```/ { exit }
       fenced { print }' "$work/answer" >"$work/fenced"
  candidate=$work/answer
  if [ -s "$work/fenced" ]; then candidate=$work/fenced; fi
  if grep -q '^--- ' "$candidate" && grep -q '^+++ ' "$candidate" && grep -q '^@@ ' "$candidate"; then
    mkdir -p -- "$suggestions_dir"
    patch="$suggestions_dir/$(date -u +%Y%m%dT%H%M%SZ)-@NAME@-$$.patch"
    cp -- "$candidate" "$patch"
    printf '%s\n' "$patch" >"$work/result"
    result=$work/result
  fi
fi

if [ -n "$out" ]; then
  mkdir -p -- "$(dirname -- "$out")"
  cp -- "$result" "$out"
else
  cat -- "$result"
fi
