#!/usr/bin/env bash
# The GPU suite in one call on a GPU machine: install the wheels its image lacks, then run gpu_suite.py.
# Beforehand, where pip can download: /work/shared/gpu/wheels.sh (fills .whl/ at the project root).
#   bash experiments/gpu_suite.sh --out "$OUT"        # any experiments/gpu_suite.py option may follow
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TATS_DATA_DIR="${TATS_DATA_DIR:-/tmp/tats_data}" PYTHONUNBUFFERED=1
exec python3 experiments/gpu_suite.py "$@"
