#!/usr/bin/env bash
# Minimises every target's corpus (or those named) with libFuzzer's set-cover merge
# (smaller than `cargo fuzz cmin`'s plain merge, for the same features), using the
# binaries scripts/run-all.sh snapshotted (no rebuild).
#   fuzz/scripts/cmin-all.sh [target...]
set -uo pipefail
cd "$(dirname "$0")/.."
snap=target/snapshot
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls "$snap")
fi
for t in "${targets[@]}"; do
  [ -x "$snap/$t" ] || { echo "$t: no snapshot binary (run scripts/run-all.sh first)"; continue; }
  before=$(ls "corpus/$t" | wc -l)
  tmp="corpus/.$t.min"
  rm -rf "$tmp" && mkdir -p "$tmp"
  if "$snap/$t" -set_cover_merge=1 -timeout=20 -rss_limit_mb=2048 "$tmp" "corpus/$t" >"logs/$t.cmin.log" 2>&1; then
    rm -rf "corpus/$t" && mv "$tmp" "corpus/$t"
    echo "$t: $before -> $(ls "corpus/$t" | wc -l) files, $(du -sh "corpus/$t" | cut -f1)"
  else
    rm -rf "$tmp"
    echo "$t: merge failed, corpus kept (logs/$t.cmin.log)"
  fi
done
