#!/usr/bin/env bash
# The GPU check of issue 31, in one go (under 8 minutes on a 16-core GPU machine):
#   (a) galaxy-ray's network alone on pre-made uint8 tensors (ResNet-18 and ResNet-50 at 224 px,
#       bf16, channels_last, batch 256 and 512; eager, then with torch.compile),
#   (b) the plain script (jobs/plain_loop.py: Pillow decode + resize, DataLoader, one worker per core),
#   (c) `galaxy-ray infer` on 20,480 packed 424-px JPEG cutouts with this machine's CPU decoders,
#       the GPU's utilisation sampled by nvidia-smi meanwhile,
#   (d) the plain loop decoding the JPEGs on the GPU (nvJPEG), where torchvision can (else the reason),
# then images/s, (c)/(a), (b)/(a) and the GPU-hours for GZ DESI's 8.7 million galaxies, as one JSON
# line printed and written to the file named by the first argument (default gpu_check.json).
#
# usage: bash jobs/gpu_check.sh [OUT_JSON]            (in the repository root; on a GPU machine)
# Sizes and choices come from the environment, so that it also runs, small, on a CPU:
#   GPU_CHECK_N (20480)  GPU_CHECK_SOURCE_SIZE (424)  GPU_CHECK_SIZE (224)  GPU_CHECK_ARCH (resnet18: b, c, d)
#   GPU_CHECK_ARCHS (resnet18,resnet50: a)  GPU_CHECK_BATCH (256)  GPU_CHECK_BATCHES (256,512)
#   GPU_CHECK_ITERS (20)  GPU_CHECK_COMPILE (1)  GPU_CHECK_LIMITS (per-stage seconds, "120 75 180 90 60 150")  GPU_CHECK_JPEGS (a folder of real JPEGs; default synthetic
#   where ../shared/data/kaggle_gz_spirals is absent)  GPU_CHECK_BUDGET_S (450)  GPU_CHECK_WORK (a temp dir)
#   PYTHON (python3)
# Where Ray is not importable and .whl/ (../shared/device/make_wheelhouse.sh) is here, it installs
# the wheelhouse into /tmp/site first.  Each stage runs under its own time limit, cut to what is
# left of the budget; a stage that fails or times out is recorded in the JSON line, and the rest go on.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check.json}
PY=${PYTHON:-python3}
N=${GPU_CHECK_N:-20480}
BUDGET=${GPU_CHECK_BUDGET_S:-450}
WORK=${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
mkdir -p "$WORK"
jpegs_default=../shared/data/kaggle_gz_spirals/images
JPEGS=${GPU_CHECK_JPEGS:-$([ -d "$jpegs_default" ] && echo "$jpegs_default" || echo synthetic)}
SECONDS=0

if ! "$PY" -c "import ray" 2>/dev/null; then
  if [ -d .whl ]; then
    echo "gpu_check: ray is not importable here; installing .whl/ into /tmp/site"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
      || echo "gpu_check: installing .whl/ failed (rc $?); stage (c) will fail and be recorded"
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "gpu_check: ray is not importable and there is no .whl/ here (see ../shared/device/README.md);" \
         "stage (c) will fail and be recorded"
  fi
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
"$PY" - <<'PY' || true
import importlib, os, torch
missing = []
for name in ("ray", "ray.data", "psutil", "astropy", "cdshealpix", "pyarrow", "PIL", "torchvision"):
    try:  # ray first: it puts its bundled psutil on the path
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001  (any failure to import is worth a line)
        missing.append(f"{name} ({type(exc).__name__}: {str(exc)[:80]})")
cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"gpu_check: torch {torch.__version__}, CUDA device {cuda}, {os.cpu_count()} CPU cores; "
      f"modules that do not import: {'; '.join(missing) or 'none'}", flush=True)
PY
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

common=(--work "$WORK" --n "$N" --source-size "${GPU_CHECK_SOURCE_SIZE:-424}" --jpegs "$JPEGS"
        --arch "${GPU_CHECK_ARCH:-resnet18}" --archs "${GPU_CHECK_ARCHS:-resnet18,resnet50}"
        --size "${GPU_CHECK_SIZE:-224}" --batch "${GPU_CHECK_BATCH:-256}" --batches "${GPU_CHECK_BATCHES:-256,512}"
        --iters "${GPU_CHECK_ITERS:-20}")

# stage NAME LIMIT_S STAGE [ARGS...]: run one stage under min(LIMIT_S, what is left of the budget)
stage() {
  local name=$1 limit=$2 what=$3 left rc=0
  shift 3
  left=$((BUDGET - SECONDS))
  [ "$limit" -lt "$left" ] || limit=$left
  if [ "$limit" -lt 10 ]; then
    echo "gpu_check: stage $name skipped: the ${BUDGET} s budget is spent"
    echo "{\"skipped\": \"the ${BUDGET} s budget was spent before this stage\"}" > "$WORK/$name.json"
    return 0
  fi
  echo "gpu_check: stage $name (at most ${limit} s; ${SECONDS} s elapsed)"
  timeout -k 10 "$limit" "$PY" jobs/gpu_check.py "$what" "${common[@]}" --out "$WORK/$name.json" --limit "$limit" "$@" || rc=$?
  if [ "$rc" -ne 0 ]; then
    local why="failed with rc $rc"
    [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || why="timed out after ${limit} s"
    echo "gpu_check: stage $name $why"
    # keep what a stage wrote before it stopped (the model stage writes as it goes), marked as cut short
    "$PY" - "$WORK/$name.json" "$why" <<'PY'
import json, sys
try:
    figures = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    figures = {}
figures["error"] = sys.argv[2]
open(sys.argv[1], "w").write(json.dumps(figures) + "\n")
PY
  fi
}

# per-stage limits in seconds (GPU_CHECK_LIMITS="inputs model infer plain gpudecode compiled"), cut to the budget
read -r l_inputs l_model l_infer l_plain l_gpudecode l_compiled <<< "${GPU_CHECK_LIMITS:-120 75 180 90 60 150}"
stage inputs "$l_inputs" inputs
stage model "$l_model" model
stage infer "$l_infer" infer
stage plain "$l_plain" plain
stage gpudecode "$l_gpudecode" gpudecode
if [ "${GPU_CHECK_COMPILE:-1}" = 1 ]; then
  stage model_compiled "$l_compiled" model --compile
else
  echo '{"skipped": "GPU_CHECK_COMPILE=0"}' > "$WORK/model_compiled.json"
fi
"$PY" jobs/gpu_check.py summary "${common[@]}" --out "$OUT"
echo "gpu_check: ${SECONDS} s in all; figures in $OUT, stage files in $WORK"
