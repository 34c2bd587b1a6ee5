#!/usr/bin/env bash
# The views on years of history (issue 14): `server dashboard`, `server
# metrics` (all of it, and `--since` one month) and `server status` on a state
# of 10,000 entries (2,000 live in every status, the rest archived by month)
# whose history holds 1,000, 50,000 and 200,000 audit lines, written the way
# tgs writes them (bench/history-fixtures.py ... views), side by side in one
# hyperfine run; then the peak memory of each, from /usr/bin/time -v.
# Every dashboard run writes the site afresh (the folder is removed first).
#
# usage: bench/views.sh [DIR]    (TGS=path/to/tgs, RUNS=N, SIZES="1000 200000")
# The fixtures are kept in DIR and made again only when missing.
set -euo pipefail
dir=${1:-/dev/shm/tgs-views}
here=$(cd "$(dirname "$0")/.." && pwd)
tgs=${TGS:-$here/target/release/tgs}
runs=${RUNS:-5}
sizes=${SIZES:-"1000 50000 200000"}
mkdir -p "$dir"
for n in $sizes; do
  [ -d "$dir/h$n/clone" ] || python3 "$here/bench/history-fixtures.py" "$dir/h$n" 10000 "$n" 2000 views >/dev/null
done

args=()
for n in $sizes; do
  args+=(-n "dashboard, $n lines" --prepare "rm -rf $dir/site-$n"
         "$tgs -C $dir/h$n/clone server dashboard --out $dir/site-$n")
done
for n in $sizes; do
  args+=(-n "metrics, $n lines" --prepare true "$tgs -C $dir/h$n/clone --json server metrics")
done
for n in $sizes; do
  args+=(-n "metrics --since, $n lines" --prepare true
         "$tgs -C $dir/h$n/clone --json server metrics --since 2026-12-01")
done
for n in $sizes; do
  args+=(-n "status, $n lines" --prepare true "$tgs -C $dir/h$n/clone --json server status")
done
hyperfine -N --warmup 1 --runs "$runs" --export-markdown "$dir/views.md" "${args[@]}"

peak() { # label, command...
  local label=$1; shift
  /usr/bin/time -v "$@" 2>"$dir/time.txt" >/dev/null
  printf '%-34s peak %7d KiB  %s s\n' "$label" \
    "$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$dir/time.txt")" \
    "$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$dir/time.txt")"
}
for n in $sizes; do
  rm -rf "$dir/site-$n"
  peak "dashboard, $n lines" "$tgs" -C "$dir/h$n/clone" server dashboard --out "$dir/site-$n"
  peak "metrics, $n lines" "$tgs" -C "$dir/h$n/clone" --json server metrics
  peak "metrics --since, $n lines" "$tgs" -C "$dir/h$n/clone" --json server metrics --since 2026-12-01
  peak "status, $n lines" "$tgs" -C "$dir/h$n/clone" --json server status
  printf '%-34s %s\n' "site, $n lines" "$(du -sk "$dir/site-$n" | cut -f1) KiB, index.html $(du -k "$dir/site-$n/index.html" | cut -f1) KiB, $(ls "$dir/site-$n/thoughts" | wc -l) pages"
done
