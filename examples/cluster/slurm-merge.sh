#!/bin/bash
# The merge step after slurm-array.sh: all shard files into one run's results. It refuses a
# missing or duplicated shard, and shards of different models, thresholds, data or options.
#SBATCH --job-name=spikeport-merge
#SBATCH --cpus-per-task=1
#SBATCH --time=00:10:00
#SBATCH --output=spikeport-merge-%j.out
set -euo pipefail

SPIKEPORT=${SPIKEPORT:-npx spikeport}
OUT=${OUT:-shards}
$SPIKEPORT merge "$OUT"/shard-[0-9]*.json --json "$OUT/results.json" --report "$OUT/report.html" --markdown "$OUT/results.md"
