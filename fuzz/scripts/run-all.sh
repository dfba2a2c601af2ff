#!/usr/bin/env bash
# Fuzzes targets one after the other, growing corpus/<target>/. Builds every target
# once (cargo fuzz build, ASan) and runs a snapshot of the binaries, so editing the
# sources meanwhile does not rebuild between targets. For each target the last
# libFuzzer status line (executions, cov, ft) is printed and the log kept in
# logs/<target>.log. Run from anywhere:
#   SECS=300 fuzz/scripts/run-all.sh [target[:seconds]...]
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
cargo fuzz build >logs/build.log 2>&1 || { tail -20 logs/build.log; exit 1; }
bin=target/x86_64-unknown-linux-gnu/release
snap=target/snapshot
rm -rf "$snap"
mkdir -p "$snap"
for t in "${targets[@]}"; do cp "$bin/${t%%:*}" "$snap/"; done
for spec in "${targets[@]}"; do
  t="${spec%%:*}"
  secs="$SECS"
  [ "$spec" = "$t" ] || secs="${spec#*:}"
  mkdir -p "corpus/$t" "artifacts/$t"
  extra=()
  case "$t" in
    # Programs for whole connections: slow executions, so libFuzzer's slow growth of
    # the input length would keep them tiny; allow 1 KiB from the start.
    *_conn|chat_*) extra=(-max_len=1024 -len_control=0) ;;
  esac
  "$snap/$t" "corpus/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$secs" \
    -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 "${extra[@]}" >"logs/$t.log" 2>&1
  rc=$?
  last=$(grep -E '^#[0-9]+' "logs/$t.log" | tail -1)
  execs=$(grep -E '^stat::number_of_executed_units' "logs/$t.log" | awk '{print $2}')
  echo "$t secs=$secs rc=$rc execs=${execs:-?} corpus_files=$(ls "corpus/$t" | wc -l) last: $last"
done
