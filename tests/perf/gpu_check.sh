#!/usr/bin/env bash
# GPU check on a machine that has torch and transformers but no diffusers and no network:
# installs what is missing from a folder of wheels, then runs tests/perf/gpu_check.py.
#
#   bash tests/perf/gpu_check.sh WHEELS_DIR [gpu_check.py args...]
#   bash tests/perf/gpu_check.sh wheels/ --out $OUT/gpu_check.jsonl       # the device tool
#   bash tests/perf/gpu_check.sh wheels/ --models 14B --only stock ours  # a part of it
#
# Prepare WHEELS_DIR on a machine with the network (about 18 MB; all pure Python except Pillow
# and charset_normalizer, which are for Python 3.11 on x86-64 Linux: for another Python on the
# GPU machine add `--only-binary=:all: --python-version 3.12` to fetch those two for it):
#
#   pip download --no-deps -d wheels/ diffusers==0.42.1 torchao==0.18.0 huggingface_hub==1.33.0 \
#       importlib_metadata lazy-importer zipp Pillow requests urllib3 idna charset_normalizer certifi \
#       ftfy wcwidth
#
# (The H200 image of 2026-11 has all of these but diffusers, torchao, importlib_metadata,
# lazy-importer, ftfy and wcwidth: those six, about 10 MB, are enough there. ftfy: Wan's i2v
# pipeline calls it unconditionally.)
#
# First tests/perf/gpu_smoke.py (every load option through our engines on the tiny pipelines,
# ${GPU_SMOKE_BUDGET_S:-120} s at most, to ${OUT:-.}/gpu_smoke.jsonl; GPU_SMOKE_BUDGET_S=0 skips it),
# then the speed check.
#
# diffusers 0.42.1 needs importlib_metadata, filelock, huggingface-hub>=1.32, numpy, regex,
# requests, safetensors>=0.8 and Pillow; torch brings filelock, transformers brings numpy, regex,
# safetensors and a huggingface-hub (1.33 here is the newest its <2.0 cap allows, with the
# dependencies transformers' own hub already has). torchao 0.18 (built for torch >= 2.11) is
# what quantize=fp8 uses. pip installs only what is missing or too old, from the folder only.
# Results go to ${OUT:-.}/gpu_check.jsonl unless --out is given.
set -euo pipefail

if [[ $# -lt 1 || ! -d $1 ]]; then
    echo "usage: bash tests/perf/gpu_check.sh WHEELS_DIR [gpu_check.py args...]" >&2
    exit 2
fi
wheels=$(cd "$1" && pwd)
shift
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
python=${PYTHON:-$(command -v python || command -v python3)}
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1  # no network there: never try it

started=$(date +%s)
if ! "$python" -c "import diffusers" 2>/dev/null; then
    "$python" -m pip install --quiet --no-index --find-links "$wheels" diffusers
fi
if ! "$python" -c "import ftfy" 2>/dev/null; then
    "$python" -m pip install --quiet --no-index --find-links "$wheels" ftfy \
        || echo "ftfy not installed from $wheels: Wan i2v smoke cases will fail"
fi
if ! "$python" -c "import torchao" 2>/dev/null; then
    # Optional: without it the ours_fp8 rows record the engine's error and the rest still runs.
    "$python" -m pip install --quiet --no-index --find-links "$wheels" torchao \
        || echo "torchao not installed from $wheels: the fp8 rows will record an error"
fi
echo "gpu_check.sh: dependencies ready in $(( $(date +%s) - started )) s"

if [[ ${GPU_SMOKE_BUDGET_S:-120} != 0 ]]; then
    "$python" tests/perf/gpu_smoke.py --out "${OUT:-.}/gpu_smoke.jsonl" \
        --budget-s "${GPU_SMOKE_BUDGET_S:-120}" > "${OUT:-.}/gpu_smoke.log" 2>&1 \
        || echo "gpu_smoke.py failed: see ${OUT:-.}/gpu_smoke.log"
    grep -h '"summary"\|"ok": false' "${OUT:-.}/gpu_smoke.jsonl" || true
fi
exec "$python" tests/perf/gpu_check.py --out "${OUT:-.}/gpu_check.jsonl" "$@"
