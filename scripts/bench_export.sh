#!/usr/bin/env bash
# The export benchmark (docs/benchmarks.md): `scripts/bench_export.sh`
#
#   1. builds the bench (functions/export/examples/export_bench.rs) in release;
#   2. seeds 1k, 10k and 100k users into one embedded-engine database file
#      each, in a temporary directory, one process per size;
#   3. exports each size in a fresh process (so each peak RSS is that size's
#      alone) and prints a Markdown table: time to first byte, total time,
#      rows/s and peak RSS, medians of BENCH_REPEAT exports;
#   4. fails if the peak RSS of the largest size exceeds 1.2x the smallest's.
#
# Knobs: BENCH_SIZES="1000 10000 100000", BENCH_REPEAT=3, BENCH_DIR=<dir to
# keep the database files in, reused when present; default: a temporary one>.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${BENCH_SIZES:-"1000 10000 100000"}
REPEAT=${BENCH_REPEAT:-3}
BIN=target/release/examples/export_bench

cargo build --release --quiet -p export-function --example export_bench

if [[ -n "${BENCH_DIR:-}" ]]; then
    WORK=$BENCH_DIR
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/export-bench.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
fi

for n in $SIZES; do
    db="$WORK/users-$n.db"
    if [[ ! -s "$db" ]]; then
        "$BIN" seed --db "$db" --users "$n"
    fi
done

RESULTS="$WORK/results.txt"
: >"$RESULTS"
for n in $SIZES; do
    "$BIN" run --db "$WORK/users-$n.db" --users "$n" --repeat "$REPEAT" | tee -a "$RESULTS" >&2
done

echo
echo "| users | time to first byte | total | rows/s | RSS before | peak RSS |"
echo "|---:|---:|---:|---:|---:|---:|"
# Lines look like: users=1000 ttfb_ms=1.2 seconds=0.034 rows_per_s=29000 rss_before_kib=15000 peak_rss_kib=17000
awk '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "| %d | %.1f ms | %.2f s | %d | %.1f MiB | %.1f MiB |\n",
        v["users"], v["ttfb_ms"], v["seconds"], v["rows_per_s"], v["rss_before_kib"] / 1024, v["peak_rss_kib"] / 1024
}' "$RESULTS"

awk 'NR == 1 { first = $0 } { last = $0 } END {
    split(first, a, "peak_rss_kib="); split(last, b, "peak_rss_kib=");
    ratio = b[2] / a[2];
    printf "\npeak RSS, largest / smallest: %.2f (limit 1.20)\n", ratio;
    exit (ratio > 1.2)
}' "$RESULTS"
