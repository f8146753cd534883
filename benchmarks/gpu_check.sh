#!/usr/bin/env bash
# The one prepared check for a lent GPU machine (H200, 16 cores, no network). Needs no network.
#
#   OUT=/where/to/write bash benchmarks/gpu_check.sh          # from the repository root
#
# What it does, each step under a share of GPU_CHECK_BUDGET_S (default 540 s, one device call):
#   1. environment: nvidia-smi, python/torch/transformers/trl/peft/datasets versions, CUDA;
#      installs carried wheels from .whl/ (see benchmarks/README.md: "GPU check") into /tmp/site;
#   2. pytest --gpu -m gpu on the files that hold GPU tests (tests/test_trainer_contract.py), junit XML;
#   3. bench_train on a tiny llama (hidden 512, 8 layers), bf16 mixed precision: instructkit
#      unpacked, packing=bfd and packing=padding_free vs TRL unpacked and packed, full and LoRA
#      (IK_VARIANTS replaces our packed rows; BENCH_TRAIN_ARGS adds any bench_train option);
#   4. the same on a real model, loaded in bf16 on both sides (--dtype bf16), when MODEL_DIR
#      (default: $INSTRUCTKIT_REAL_MODEL, else shared/models/smollm2-135m-instruct) holds a
#      config.json; skipped with a note if not;
#   5. bench_generate (evaluate vs a plain generate loop) on the GPU, small;
#   6. a two-process run when the machine has two GPUs or more, through the engine's own
#      launcher (`train --accelerate-config ddp --num-processes 2`): both ranks share one
#      tokenization cache entry (rank 0 builds it; the run record says hit/miss).
# Data: $INSTRUCTKIT_SHARED_DATA, else shared/data (a carried, git-ignored copy), else
# ../shared/data, else the shipped examples/data/dialogs (599 dialogues, DialogSum layout).
# Everything goes to $OUT: gpu_check.log, summary.txt, *.json, pytest-gpu.xml.
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
# scratch for prepared data, models and runs (SCRATCH=... to put it elsewhere)
SCRATCH=${SCRATCH:-${TMPDIR:-/tmp}}
OUT=${OUT:-$(mktemp -d "$SCRATCH/gpu-check-XXXX")}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-540}
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
left() { echo $((BUDGET - SECONDS)); }
# step TIMEOUT NAME CMD...: run with min(TIMEOUT, budget left), record the exit status
step() {
  local limit=$1 name=$2
  shift 2
  local rest
  rest=$(left)
  if [ "$rest" -lt 20 ]; then
    note "SKIP $name: budget spent (${BUDGET}s)"
    return 0
  fi
  [ "$limit" -gt "$rest" ] && limit=$rest
  echo "=== $name (timeout ${limit}s, ${rest}s of budget left)"
  local t0=$SECONDS
  timeout --signal=INT --kill-after=15 "$limit" "$@"
  local rc=$?
  note "$name: exit $rc in $((SECONDS - t0))s"
  return 0
}

export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export HF_HOME=${HF_HOME:-/tmp/hf-home} MPLBACKEND=Agg

# 1. environment ----------------------------------------------------------------------------
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH="$REPO:$REPO/plugins/instructkit-peft-extras${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || note "nvidia-smi failed"
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
"$PY" - <<'EOF' | tee "$OUT/env.json"
import importlib, json, os, sys
info = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "click",
             "pluggy", "jinja2", "yaml", "pyarrow", "rouge_score", "matplotlib", "pytest"):
    try:
        info[name] = getattr(importlib.import_module(name), "__version__", "present")
    except Exception as ex:  # noqa: BLE001
        info[name] = f"MISSING ({type(ex).__name__})"
try:
    import torch
    info["cuda"] = torch.cuda.is_available()
    if info["cuda"]:
        info["device"] = torch.cuda.get_device_name(0)
        info["bf16"] = torch.cuda.is_bf16_supported()
except Exception:  # noqa: BLE001
    info["cuda"] = False
print(json.dumps(info, indent=1))
EOF
grep -q MISSING "$OUT/env.json" && note "missing packages (carry wheels in .whl/): $(grep MISSING "$OUT/env.json" | tr -d ' \n')"
note "GPUs: $NGPU"

if [ -n "${INSTRUCTKIT_SHARED_DATA:-}" ] && [ -d "$INSTRUCTKIT_SHARED_DATA/dialogsum" ]; then
  DATA=$INSTRUCTKIT_SHARED_DATA
elif [ -d shared/data/dialogsum ]; then
  DATA=$REPO/shared/data
elif [ -d ../shared/data/dialogsum ]; then
  DATA=$(cd ../shared/data && pwd)
else
  DATA=$SCRATCH/ik-gpu-data
  mkdir -p "$DATA" && ln -sfn "$REPO/examples/data/dialogs" "$DATA/dialogsum"
  note "data: shipped examples/data/dialogs (599 dialogues): real DialogSum absent"
fi
export INSTRUCTKIT_SHARED_DATA=$DATA
note "data: $DATA"

# 2. GPU tests ------------------------------------------------------------------------------
# only the files that hold GPU tests: collecting the others would need every test dependency
mapfile -t GPU_TESTS < <(grep -l "mark.gpu" tests/*.py)
note "GPU test files: ${GPU_TESTS[*]:-none}"
step 180 "pytest --gpu -m gpu" "$PY" -m pytest -q -p no:cacheprovider --gpu -m gpu \
  "${GPU_TESTS[@]:-tests}" --junitxml="$OUT/pytest-gpu.xml" -rs

# 3. tiny llama, bf16: instructkit (unpacked, bfd, padding-free) vs TRL (unpacked, packed) ----
# our packing rows (bench_train --ik-variant NAME:K=V,...); padding-free runs varlen under
# flash attention when it is installed (attn_implementation=flash_attention_2), sdpa otherwise
IK_VARIANTS=${IK_VARIANTS:---ik-variant bfd:packing=bfd --ik-variant pf:packing=padding_free}
# shellcheck disable=SC2086
step 150 "bench_train tiny llama bf16" "$PY" benchmarks/bench_train.py --precision bf16 \
  --tiny-hidden 512 --tiny-layers 8 --tiny-vocab 8000 --rows 4000 --steps 40 --skip-steps 5 \
  --batch-size 16 --work $SCRATCH/ik-bench-train --json "$OUT/train-tiny-bf16.json" \
  $IK_VARIANTS ${BENCH_TRAIN_ARGS:-}

# 4. a real model, bf16 ----------------------------------------------------------------------
MODEL_DIR=${MODEL_DIR:-${INSTRUCTKIT_REAL_MODEL:-shared/models/smollm2-135m-instruct}}
if [ -f "$MODEL_DIR/config.json" ]; then
  # shellcheck disable=SC2086
  step 200 "bench_train real model bf16 ($MODEL_DIR)" "$PY" benchmarks/bench_train.py \
    --model "$MODEL_DIR" --precision bf16 --dtype bf16 --rows 4000 --steps 30 --skip-steps 5 \
    --batch-size 8 --max-source-length 384 --max-target-length 128 \
    --work $SCRATCH/ik-bench-train-real --json "$OUT/train-real-bf16.json" \
    $IK_VARIANTS ${BENCH_TRAIN_ARGS:-}
else
  note "SKIP real model: no config.json in '$MODEL_DIR' (set MODEL_DIR; see docs REAL-MODEL.md)"
fi

# 5. generation on the GPU -------------------------------------------------------------------
GEN_MODEL=()
[ -f "$MODEL_DIR/config.json" ] && GEN_MODEL=(--model "$MODEL_DIR")
step 90 "bench_generate" "$PY" benchmarks/bench_generate.py "${GEN_MODEL[@]}" --rows 128 \
  --batch-size 32 --max-new-tokens 64 --large-copies 1 --work $SCRATCH/ik-bench-gen \
  --json "$OUT/generate.json"

# 6. two processes, when there are two GPUs ---------------------------------------------------
if [ "${NGPU:-0}" -ge 2 ]; then
  step 120 "train --accelerate-config ddp, 2 processes" "$PY" -m instructkit train \
    $SCRATCH/ik-bench-train/mix-4000 -b lora -m $SCRATCH/ik-bench-train/tiny-llama-h512-l8-v8000 \
    --out $SCRATCH/ik-ddp --overwrite -q --accelerate-config ddp --num-processes 2 \
    -o max_steps=20 -o precision=bf16 -o packing=bfd -o save_steps=1000000
  cp $SCRATCH/ik-ddp/instructkit-train.json "$OUT/ddp-run-record.json" 2>/dev/null \
    || note "two-process run: no run record"
else
  note "SKIP two-process run: $NGPU GPU(s)"
fi

note "total: ${SECONDS}s"
cat "$SUMMARY"
