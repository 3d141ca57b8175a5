#!/bin/bash
# Submits a whole siuo run to Slurm: each per-item stage as a job array of
# SHARDS tasks, each followed by a merge, the stages that compare all
# candidates (dedupe) or write the release (export) as single jobs, every
# job waiting for the one before it.
#
#   SHARDS=8 deploy/slurm/submit.sh            # from the project folder
#
# The release is byte-identical to one `siuo run` on one machine.
set -euo pipefail
shards="${SHARDS:-4}"
here="$(cd "$(dirname "$0")" && pwd)"
siuo="${SIUO:-siuo}"
after=""
for stage in generate check dedupe verify difficulty export; do
  dependency=()
  [ -n "$after" ] && dependency=(--dependency="afterok:$after")
  case "$stage" in
    dedupe|export)
      after="$(sbatch --parsable "${dependency[@]}" --job-name="siuo-$stage" --wrap "$siuo --quiet $stage")"
      ;;
    *)
      array="$(sbatch --parsable "${dependency[@]}" --array="0-$(( shards - 1 ))" \
        --export="ALL,STAGE=$stage" "$here/siuo-shard.sbatch")"
      after="$(sbatch --parsable --dependency="afterok:$array" --job-name="siuo-merge-$stage" \
        --wrap "$siuo --quiet merge $stage")"
      ;;
  esac
  echo "$stage: job $after"
done
