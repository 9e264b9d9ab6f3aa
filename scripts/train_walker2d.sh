#!/usr/bin/env bash
# The pipeline that produced the shipped Walker2d model (diffuser_ros/models/walker2d); see its
# MODEL_CARD for the steps each stage ran. Resumable: rerun the same command.
# Usage: scripts/train_walker2d.sh [RUN]   (default RUN=runs/walker2d)
set -euo pipefail
cd "$(dirname "$0")/.."
SAC_SEED=${SAC_SEED:-0} SAC_STEPS=${SAC_STEPS:-300000} SAC_STOP=${SAC_STOP:-medium} \
    exec scripts/train_robot.sh walker2d "${1:-runs/walker2d}"
