#!/usr/bin/env bash
# shellcheck disable=SC2329  # the checks are called by name ("check_$2"), the helpers from the checks
# Checks that traitloop really uses an NVIDIA GPU (a few minutes on one GPU). Each check prints PASS, SKIP or FAIL:
#
#   local    SFT on the local backend: a 1-cycle run of the tiny model, with the sampler, the likelihoods and
#            the trainer seen on the device, and the manifest recording it for every stage that runs a model
#   dpo      DPO, continual, seeded by SFT: two cycles of the tiny model, trained on the device
#   distill  on-policy distillation: one cycle of the tiny model, trained on the device
#   vllm     vLLM in this process (generation.backend: vllm): two cycles of the embedded model, LoRA requests
#   serve    `vllm serve` with runtime LoRA (generation.backend: server): two cycles of the embedded model
#   ray      a Ray sweep of two tiny runs at num_gpus_per_run 0.5 (auto on a CPU): both run at the same time
# On a GPU, every run's manifest must say cuda, and the memory plan's estimate of each training stage is set
# beside the peak torch measured in it (PEAK lines).
#
# Usage:  scripts/gpu_check.sh [--device cuda|cpu] [CHECK ...]     (default: cuda, all six, in that order)
#   --device cpu       every check on the CPU (vllm and serve are skipped where vLLM is missing): CI runs this
#                      so that the checks cannot rot between the sessions that have a GPU
#   PYTHON=...         the interpreter with traitloop installed (default .venv/bin/python, else python3);
#                      needs the extras: pip install -e ".[dev,vllm]" (vllm for vllm/serve, ray for ray)
#   GPU_CHECK_DIR=...  where runs and logs go (default: a new temporary folder, kept for reading)
# With --device cuda on a machine where torch sees no CUDA GPU it prints "no GPU: skipped" and exits 0.
# Exits 1 if a check fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT="$ROOT/scripts/gpu_check.sh"
cd "$ROOT"
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHON
CHECKS=(local dpo distill vllm serve ray)
DEVICE=cuda
if [[ ${1:-} == --device ]]; then
    DEVICE=${2:-}
    shift 2
    [[ $DEVICE == cuda || $DEVICE == cpu ]] || { echo "--device must be cuda or cpu" >&2; exit 2; }
fi
export DEVICE

# ---- helpers (used inside the checks) ------------------------------------------------------------------

# A config with the tiny model's sizes (tests/conftest.py's tiny_config), on $DEVICE: FILE MODEL CYCLES [YAML...]
write_config() {
    local file=$1 model=$2 cycles=$3
    shift 3
    {
        echo "trait: lucky"
        echo "model: $model"
        echo "cycles: $cycles"
        echo "seed_examples: 8"
        echo "samples_per_cycle: 8"
        echo "device: $DEVICE"
        echo "training: {epochs: 1, batch_size: 4, max_length: 256, lora: {r: 8, alpha: 16}}"
        echo "evaluation: {eval_samples: 1, max_new_tokens: 32, bootstrap_resamples: 200}"
        printf '%s\n' "$@"
    } >"$file"
}

# The run folder is complete, and every stage that runs a model recorded $DEVICE: RUN_DIR [BACKEND]
assert_run_on_device() {
    "$PYTHON" - "$@" <<'PY'
import os
import sys

from traitloop.rundir import open_run_folder, planned_stages

device = os.environ["DEVICE"]
folder, backend = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "local")
run = open_run_folder(folder)
assert run.is_complete(), f"{folder}: not every stage is current"
stages = run.manifest.stages
for name in planned_stages(run.config.cycles):
    if name == "cycle_000/data" and "device" not in stages[name]:
        continue  # sft's cycle 0 copies the seed set: no model runs
    assert stages[name].get("device") == device, f"{folder}: stage {name} ran on {stages[name].get('device')}"
dtypes = {stages[name]["dtype"] for name in stages if "dtype" in stages[name]}
assert len(dtypes) == 1, f"{folder}: stages in several dtypes {dtypes}"
if backend != "local":
    for cycle in range(1, run.config.cycles + 1):
        used = stages[f"cycle_{cycle:03d}/data"]["inputs"]["config"]["generation"]["backend"]
        assert used == backend, f"{folder}: cycle {cycle}'s data sampled with {used}, not {backend}"
        rows = (run.folder / f"cycle_{cycle:03d}" / "train.jsonl").read_text().splitlines()
        assert rows, f"{folder}: cycle {cycle} has no training rows"
print(f"{folder}: complete, every model stage on {device}/{dtypes.pop()}")
PY
}

tiny_model() {
    [[ -d $WORK/tiny ]] || "$PYTHON" tests/tiny_model.py "$WORK/tiny" >/dev/null
    echo "$WORK/tiny"
}

embedded_model() {
    "$PYTHON" -c 'from traitloop.models import pull; print(pull("smollm2-135m-instruct"))'
}

need_module() {
    if ! "$PYTHON" -c "import $1" 2>/dev/null; then
        echo "$1 is not installed: pip install -e '.[$2]'"
        return 1
    fi
}

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- the checks (each runs in its own bash process, so `set -e` stops it at its first failure) ---------

check_local() {
    local model
    model=$(tiny_model)
    write_config "$WORK/local.yaml" "$model" 1 "generation: {max_new_tokens: 32, batch_size: 8}"
    "$PYTHON" - "$WORK/local.yaml" "$WORK/local" <<'PY'
import sys

import torch

import os

import traitloop
import traitloop.generate._local as local
import traitloop.judge._signals as signals
import traitloop.methods._sft as sft

seen = {"generation": set(), "likelihood": set(), "training": set()}
generate_batch, batch_nll, train_and_save = local.LocalGenerator._generate_batch, signals._batch_nll, sft.train_and_save


def spy_generate(self, *args, **kwargs):
    seen["generation"].add(self.model.device.type)
    return generate_batch(self, *args, **kwargs)


def spy_nll(model, *args, **kwargs):
    seen["likelihood"].add(model.device.type)
    return batch_nll(model, *args, **kwargs)


def spy_train(trainer, *args, **kwargs):
    result = train_and_save(trainer, *args, **kwargs)
    seen["training"].add(next(trainer.model.parameters()).device.type)
    return result


local.LocalGenerator._generate_batch, signals._batch_nll, sft.train_and_save = spy_generate, spy_nll, spy_train
traitloop.run(sys.argv[1], output=sys.argv[2])
print("devices seen:", seen)
device = os.environ["DEVICE"]
assert all(found == {device} for found in seen.values()), f"not everything ran on {device}: {seen}"
assert device == "cpu" or torch.cuda.max_memory_allocated() > 0
PY
    assert_run_on_device "$WORK/local"
}

# A run whose every train stage is spied on: the trained model is on the device: CONFIG RUN_DIR
run_training_on_device() {
    "$PYTHON" - "$@" <<'PY'
import os
import sys

import traitloop
import traitloop.api
import traitloop.methods._distill as distill
import traitloop.methods._dpo as dpo
import traitloop.methods._sft as sft

import torch

device, seen, peaks = os.environ["DEVICE"], set(), {}
for module in (sft, dpo, distill):
    original = module.train_and_save

    def spy(trainer, job, *args, _original=original, **kwargs):
        seen.add(next(p for p in trainer.model.parameters() if p.requires_grad).device.type)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        result = _original(trainer, job, *args, **kwargs)
        if device == "cuda":
            peaks[f"{job.output_dir.parent.name}/train"] = torch.cuda.max_memory_allocated()
        return result

    module.train_and_save = spy
traitloop.run(sys.argv[1], output=sys.argv[2])
assert seen == {device}, f"training ran on {seen}, not {device}"
if peaks:  # the memory plan's estimate of each training stage beside the peak torch measured in it
    (planned,) = traitloop.api.plan(sys.argv[1])
    # torch counts the tensors it allocates, not the CUDA context the plan adds to every stage
    estimates = {s.stage: sum(i.bytes for i in s.memory if not i.name.startswith("CUDA")) for s in planned.stages}
    for stage, measured in sorted(peaks.items()):
        estimated = estimates[stage]
        print(f"PEAK {stage}: estimated {estimated / 2**30:.2f} GiB, measured {measured / 2**30:.2f} GiB "
              f"({estimated / measured - 1:+.0%})")
print(f"trained on {device}")
PY
}

check_dpo() {
    local model
    model=$(tiny_model)
    write_config "$WORK/dpo.yaml" "$model" 2 "method: dpo" "regime: continual" "dpo: {seed_method: sft}" \
        "generation: {max_new_tokens: 16, batch_size: 8}"
    run_training_on_device "$WORK/dpo.yaml" "$WORK/dpo"
    assert_run_on_device "$WORK/dpo"
}

check_distill() {
    local model
    model=$(tiny_model)
    write_config "$WORK/distill.yaml" "$model" 1 "method: distill" "generation: {max_new_tokens: 16, batch_size: 8}"
    run_training_on_device "$WORK/distill.yaml" "$WORK/distill"
    assert_run_on_device "$WORK/distill"
}

# vLLM needs a CUDA GPU: with --device cpu its checks say so and pass over (exit 3 = skipped)
need_vllm() {
    if [[ $DEVICE == cpu ]] || ! "$PYTHON" -c "import vllm" 2>/dev/null; then
        echo "vLLM is not installed or there is no GPU: pip install -e '.[vllm]' on a CUDA machine"
        exit 3
    fi
}

check_vllm() {
    need_vllm
    local model
    model=$(embedded_model)
    write_config "$WORK/vllm.yaml" "$model" 2 \
        "generation: {max_new_tokens: 32, backend: vllm, vllm: {gpu_memory_utilization: 0.3}}"
    "$PYTHON" -m traitloop run "$WORK/vllm.yaml" --output "$WORK/vllm"
    assert_run_on_device "$WORK/vllm" vllm
}

check_serve() {
    need_vllm
    local model port vllm_bin server_pid
    model=$(embedded_model)
    port=$(free_port)
    vllm_bin="$(dirname "$(command -v "$PYTHON")")/vllm" # the vllm command of PYTHON's environment
    if [[ ! -x $vllm_bin ]]; then
        vllm_bin=$(command -v vllm) || { echo "no vllm command next to $PYTHON or on PATH"; return 1; }
    fi
    # runtime LoRA: traitloop loads each generation's adapter through /v1/load_lora_adapter
    VLLM_ALLOW_RUNTIME_LORA_UPDATING=True "$vllm_bin" serve "$model" --served-model-name smollm2 \
        --host 127.0.0.1 --port "$port" --enable-lora --max-lora-rank 8 --gpu-memory-utilization 0.3 \
        --dtype bfloat16 >"$WORK/serve.server.log" 2>&1 &
    server_pid=$!
    # shellcheck disable=SC2064  # the pid is known now, and the trap must kill this very server
    trap "kill $server_pid 2>/dev/null || true; wait $server_pid 2>/dev/null || true" EXIT
    "$PYTHON" - "$port" "$server_pid" <<'PY'
import os
import sys
import time
import urllib.request

port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("vllm serve exited before it was ready: see serve.server.log")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5):
            break
    except OSError:
        time.sleep(2)
else:
    sys.exit("vllm serve was not ready within 600 s")
PY
    write_config "$WORK/serve.yaml" "$model" 2 "generation:" "  max_new_tokens: 32" "  backend: server" \
        "  server: {base_url: 'http://127.0.0.1:$port/v1', model: smollm2}"
    "$PYTHON" -m traitloop run "$WORK/serve.yaml" --output "$WORK/serve"
    assert_run_on_device "$WORK/serve" server
}

check_ray() {
    need_module ray ray
    local model
    model=$(tiny_model)
    write_config "$WORK/ray-base.yaml" "$model" 1 "generation: {max_new_tokens: 32, batch_size: 8}"
    local GPUS_PER_RUN=0.5
    [[ $DEVICE == cuda ]] || GPUS_PER_RUN=auto # no GPU in the cluster: each run reserves none
    cat >"$WORK/ray-sweep.yaml" <<EOF
name: gpu-share
base: $WORK/ray-base.yaml
grid:
  seed: [0, 1]
executor:
  ray: {num_cpus: 4, num_cpus_per_run: 2, num_gpus_per_run: $GPUS_PER_RUN}
EOF
    # One GPU visible to the local Ray: two runs at the same time there means each got the half it declared
    # (at num_gpus_per_run: 1 the second would wait for the first).
    CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0} \
        "$PYTHON" -m traitloop sweep "$WORK/ray-sweep.yaml" --executor ray --output "$WORK/ray"
    local run
    for run in "$WORK"/ray/runs/*/; do
        assert_run_on_device "${run%/}"
    done
    "$PYTHON" - "$WORK/ray/runs" <<'PY'
import sys
from datetime import datetime, timedelta
from pathlib import Path

from traitloop.rundir import open_run_folder

spans = []
for folder in sorted(Path(sys.argv[1]).iterdir()):
    records = open_run_folder(folder).manifest.stages.values()
    ends = [datetime.fromisoformat(r["finished"]) for r in records]
    starts = [end - timedelta(seconds=r.get("seconds", 0)) for end, r in zip(ends, records, strict=True)]
    spans.append((min(starts), max(ends)))
assert len(spans) == 2, f"expected 2 runs, found {len(spans)}"
(start_a, end_a), (start_b, end_b) = spans
assert start_a < end_b and start_b < end_a, f"the two runs did not overlap on the GPU: {spans}"
print("the two runs overlapped:", [f"{s:%H:%M:%S}-{e:%H:%M:%S}" for s, e in spans])
PY
}

# ---- main ----------------------------------------------------------------------------------------------

if [[ ${1:-} == __check ]]; then # one check, in this process (started below, once per check)
    "check_$2"
    exit 0
fi

gpus=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')
if [[ $gpus == 0 && $DEVICE == cuda ]]; then
    echo "no GPU: skipped"
    exit 0
fi

selected=("$@")
if [[ ${#selected[@]} == 0 ]]; then selected=("${CHECKS[@]}"); fi
for check in "${selected[@]}"; do
    if [[ " ${CHECKS[*]} " != *" $check "* ]]; then
        echo "unknown check '$check' (choose from: ${CHECKS[*]})" >&2
        exit 2
    fi
done

WORK=${GPU_CHECK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/traitloop-gpu-check.XXXXXX")}
mkdir -p "$WORK"
export WORK
if [[ $DEVICE == cuda ]]; then
    echo "traitloop GPU checks on $gpus GPU(s): $("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0))')"
else
    echo "traitloop GPU checks on the CPU (--device cpu)"
fi
echo "runs and logs in $WORK"

failed=0
for check in "${selected[@]}"; do
    started=$SECONDS
    status=0
    bash "$SCRIPT" --device "$DEVICE" __check "$check" >"$WORK/$check.log" 2>&1 || status=$?
    if [[ $status == 0 ]]; then
        echo "PASS  $check ($((SECONDS - started)) s)"
        grep '^PEAK' "$WORK/$check.log" | sed 's/^/      /' || true
    elif [[ $status == 3 ]]; then
        echo "SKIP  $check: $(tail -n 1 "$WORK/$check.log")"
    else
        echo "FAIL  $check ($((SECONDS - started)) s): last lines of $WORK/$check.log:"
        tail -n 15 "$WORK/$check.log" | sed 's/^/      /'
        failed=1
    fi
done
exit "$failed"
