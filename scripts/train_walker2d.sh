#!/usr/bin/env bash
# The pipeline that produced the shipped Walker2d model (diffuser_ros/models/walker2d, v0.1);
# its MODEL_CARD says where each stage stopped: SAC ended at the first policy reaching a third of
# expert return (100k steps), the diffusion model was stopped at 154k of its 200k steps, the
# value function ran its 200k. Resumable: rerun the same command to train on.
# Usage: scripts/train_walker2d.sh [RUN]   (default RUN=runs/walker2d)
set -euo pipefail
cd "$(dirname "$0")/.."
SAC_SEED=${SAC_SEED:-0} SAC_STEPS=${SAC_STEPS:-300000} SAC_STOP=${SAC_STOP:-medium} \
    DEFAULTS=${DEFAULTS:-'{"n_candidates": 16, "n_guide_steps": 1, "warm_start": false}'} \
    exec scripts/train_robot.sh walker2d "${1:-runs/walker2d}"
