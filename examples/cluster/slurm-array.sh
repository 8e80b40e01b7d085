#!/bin/bash
# A spikeport simulation split over a Slurm job array: one shard per array task, each writing
# its statistics; a dependent job merges them into the results of one run (exactly).
#
#   jid=$(sbatch --parsable --array=0-7 slurm-array.sh)
#   sbatch --dependency=afterok:$jid slurm-merge.sh
#
# The array must be contiguous (0-7, or 1-8): the shard is SLURM_ARRAY_TASK_ID minus
# SLURM_ARRAY_TASK_MIN, of SLURM_ARRAY_TASK_COUNT. A task that is preempted or requeued
# continues from its checkpoint. Settings come from the environment (sbatch --export=...).
#SBATCH --job-name=spikeport
#SBATCH --cpus-per-task=8
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=spikeport-%A_%a.out
set -euo pipefail

SPIKEPORT=${SPIKEPORT:-npx spikeport}         # the command (spikeport installed in the job's folder)
MODEL=${MODEL:-resnet34.snn.onnx}             # made once with: spikeport convert resnet34.onnx --data ... --out resnet34.snn.onnx
DATA=${DATA:-imagefolder:/data/imagenet/val}  # every task reads the same data; each simulates its own batches
T=${T:-32,64,128,256}
BATCH=${BATCH:-50}                            # the same in every task (it decides the shards)
EXTRA=${EXTRA:-}                              # more simulate options, e.g. "--delay fit --limit 10000"
OUT=${OUT:-shards}                            # shard-K.json, checkpoint-K.json
mkdir -p "$OUT"

shard="$OUT/shard-${SLURM_ARRAY_TASK_ID}"
$SPIKEPORT simulate "$MODEL" --data "$DATA" --T "$T" --batch "$BATCH" \
  --threads "${SLURM_CPUS_PER_TASK:-1}" ${EXTRA:-} \
  --checkpoint "$OUT/checkpoint-${SLURM_ARRAY_TASK_ID}.json" --json "$shard.json" -q
