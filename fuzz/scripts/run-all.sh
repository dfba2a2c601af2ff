#!/usr/bin/env bash
# Fuzzes every target (or those named) for SECS seconds each, one after the other,
# growing corpus/<target>/; the last libFuzzer status line of each run (executions,
# cov, ft) goes to logs/<target>.log and is printed. Run from anywhere:
#   SECS=300 fuzz/scripts/run-all.sh [target...]
# On a stable toolchain cargo-fuzz needs RUSTC_BOOTSTRAP=1 (see fuzz/README.md).
set -uo pipefail
cd "$(dirname "$0")/.."
SECS="${SECS:-300}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')
fi
mkdir -p logs artifacts
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  extra=()
  case "$t" in
    # Programs for whole connections: slow executions, so libFuzzer's slow growth of
    # the input length would keep them tiny; allow 1 KiB from the start.
    http_conn|chat_*) extra=(-max_len=1024 -len_control=0) ;;
  esac
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$SECS" -timeout=20 \
    -rss_limit_mb=2048 -print_final_stats=1 "${extra[@]}" >"logs/$t.log" 2>&1
  rc=$?
  last=$(grep -E '^#[0-9]+' "logs/$t.log" | tail -1)
  execs=$(grep -E '^stat::number_of_executed_units' "logs/$t.log" | awk '{print $2}')
  echo "$t rc=$rc execs=${execs:-?} corpus_files=$(ls "corpus/$t" | wc -l) last: $last"
done
