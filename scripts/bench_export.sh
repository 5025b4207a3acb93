#!/usr/bin/env bash
# The export benchmark (docs/benchmarks.md): `scripts/bench_export.sh`
#
#   1. builds the bench (functions/export/examples/export_bench.rs) in release;
#   2. seeds 1k, 10k and 100k users into one embedded-engine database file
#      each, in a temporary directory, one process per size;
#   3. exports each size in each mode (plain stream, gzip stream, export
#      job) in a fresh process (so each peak RSS is that run's alone) and
#      prints a Markdown table: time to first byte, total time, rows/s,
#      bytes per row and peak RSS, medians of BENCH_REPEAT exports;
#   4. fails if the peak RSS of a mode's largest size exceeds 1.2x its
#      smallest's.
#
# Knobs: BENCH_SIZES="1000 10000 100000", BENCH_MODES="stream gzip job",
# BENCH_REPEAT=3, BENCH_DIR=<dir to keep the database files in, reused when
# present; default: a temporary one>.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${BENCH_SIZES:-"1000 10000 100000"}
MODES=${BENCH_MODES:-"stream gzip job"}
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
for mode in $MODES; do
    for n in $SIZES; do
        "$BIN" run --db "$WORK/users-$n.db" --users "$n" --repeat "$REPEAT" --mode "$mode" | tee -a "$RESULTS" >&2
    done
done

echo
echo "| mode | users | time to first byte | total | rows/s | bytes/row | RSS before | peak RSS |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
# Lines look like: mode=stream users=1000 ttfb_ms=1.2 seconds=0.034 rows_per_s=29000 bytes_per_row=400.1 rss_before_kib=15000 peak_rss_kib=17000
awk '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "| %s | %d | %.1f ms | %.2f s | %d | %.1f | %.1f MiB | %.1f MiB |\n",
        v["mode"], v["users"], v["ttfb_ms"], v["seconds"], v["rows_per_s"], v["bytes_per_row"],
        v["rss_before_kib"] / 1024, v["peak_rss_kib"] / 1024
}' "$RESULTS"

# Per mode: the peak RSS of its first (smallest) and last (largest) size.
awk '{
    split($1, m, "="); split($0, r, "peak_rss_kib=");
    if (!(m[2] in first)) first[m[2]] = r[2];
    last[m[2]] = r[2]
} END {
    failed = 0
    for (mode in first) {
        ratio = last[mode] / first[mode];
        printf "\npeak RSS of %s, largest / smallest: %.2f (limit 1.20)", mode, ratio;
        if (ratio > 1.2) failed = 1
    }
    print "";
    exit failed
}' "$RESULTS"
