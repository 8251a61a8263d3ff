"""How fast is each part of a cycle on this machine? Everything side by side in one process, with ratios.

On the embedded SmolLM2-135M-Instruct, with the same prompts and sampling settings for every generator:

* the machine's fp32 matmul rate (the faster of MKL and oneDNN), the generation ceiling it implies
  (2 x parameters FLOP per token), and what a decode step's matrix products alone reach at the batch sizes
  used: the bound for the local backend at those batches;
* generation tokens/s: a one-prompt-at-a-time ``model.generate`` loop (the baseline), the same prompts in
  length-sorted batches with transformers' own sampling, traitloop's local backend (at the batch size and at
  twice it, and without each of its packed weights and shared-prefix cache), and the llama.cpp
  server single-stream on the same model as GGUF (the ``server`` extra);
* LoRA SFT training tokens/s and its share of the matmul ceiling (4 x parameters FLOP per token: a forward
  pass and the activations' backward pass; frozen weights get no gradient);
* LoRA DPO training pairs/s with TRL's GPU-sized log-probability tiles and with traitloop's CPU-sized ones;
* the embedded judges' answers/s (trait: sentence embeddings; coherence: base-model likelihood);
* evaluating the base model with a cold judge cache (the trait judge is fitted first) and a warm one.

    python benchmarks/throughput.py                  # about 15 minutes on 2 CPU cores
    python benchmarks/throughput.py --no-server      # without the llama.cpp server
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from traitloop.config import TrainingConfig
from traitloop.generate import LocalGenerator, SamplingParams, server_generator
from traitloop.judge import Item, NllScorer, embedded_coherence_judge, embedded_trait_judge
from traitloop.loop._evals import EvalSet
from traitloop.loop._evaluate import evaluate_generation
from traitloop.loop._progress import quiet_libraries
from traitloop.models import gguf_path, load_model, load_tokenizer, pull
from traitloop.traits import load_conversations, load_prompt_pool, load_trait

MODEL = "smollm2-135m-instruct"


def best_seconds(work, repeats: int) -> float:
    work()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def bfloat16_matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """The best of several bfloat16 ``size`` x ``size`` matrix products, in GFLOP/s: the ceiling of training
    that computes in bfloat16 (emulated, and slow, on a CPU without bfloat16 matrix units)."""
    a, b = torch.randn(size, size, dtype=torch.bfloat16), torch.randn(size, size, dtype=torch.bfloat16)
    return 2 * size**3 / best_seconds(lambda: a @ b, repeats) / 1e9


def ceiling_gflops(dtype: str) -> float:
    """The training ceiling in ``dtype``: the faster fp32 path of ``matmul_gflops``, or the bfloat16 rate."""
    return max(matmul_gflops()) if dtype == "float32" else bfloat16_matmul_gflops()


def matmul_gflops(size: int = 2048, repeats: int = 10) -> tuple[float, float]:
    """The best of several fp32 ``size`` x ``size`` matrix products, in GFLOP/s: through torch's matmul
    (MKL) and through oneDNN with the weight packed (what the local backend uses). The faster is the ceiling."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    packed = torch.ops.mkldnn._reorder_linear_weight(b, size)
    mkl = best_seconds(lambda: a @ b, repeats)
    onednn = best_seconds(lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], ""), repeats)
    return 2 * size**3 / mkl / 1e9, 2 * size**3 / onednn / 1e9


def decode_products_rate(model, batch: int, repeats: int = 5) -> float:
    """Tokens/s of one decode step's matrix products alone - every linear layer of the model, weights packed
    as the local backend packs them, on ``batch`` rows - with no attention, norms, prefill or sampling:
    an upper bound for the local backend at that batch, which runs these products and more."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    packed = [torch.ops.mkldnn._reorder_linear_weight(m.weight.detach(), batch) for m in linears]
    inputs = [torch.randn(batch, m.in_features) for m in linears]

    def step():
        for x, w in zip(inputs, packed, strict=True):
            torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")

    with torch.inference_mode():
        return batch / best_seconds(step, repeats)


def timed(work):
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def token_count(tokenizer, texts: list[str]) -> int:
    return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


def naive_loop(model, tokenizer, chats, params: SamplingParams) -> list[str]:
    """The baseline: one ``generate`` call per prompt, as a first script would do it."""
    texts = []
    torch.manual_seed(params.seed)
    for chat in chats:
        ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            out = model.generate(
                **ids, max_new_tokens=params.max_new_tokens, do_sample=True, temperature=params.temperature,
                top_p=params.top_p, top_k=None, pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        texts.append(tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    return texts


def batched_transformers(model, tokenizer, chats, params: SamplingParams) -> list[str]:
    """Length-sorted batches through ``generate`` with transformers' own sampling and growing KV cache:
    what the local backend does, minus its sampler and packed weights."""
    texts = [""] * len(chats)
    order = sorted(range(len(chats)), key=lambda i: len(tokenizer.apply_chat_template(chats[i])))
    torch.manual_seed(params.seed)
    for start in range(0, len(order), params.batch_size):
        indices = order[start : start + params.batch_size]
        rendered = [tokenizer.apply_chat_template(chats[i], tokenize=False, add_generation_prompt=True)
                    for i in indices]  # fmt: skip
        batch = tokenizer(rendered, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(
                **batch, max_new_tokens=params.max_new_tokens, do_sample=True, temperature=params.temperature,
                top_p=params.top_p, top_k=None, pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        for i, row in zip(indices, out[:, batch["input_ids"].shape[1] :], strict=True):
            texts[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    return texts


def rate_row(name: str, tokenizer, work, rates: dict[str, float]):
    """A generation row (tokens/s of ``work()``'s answers, against the baseline loop and the ceiling), the
    answers and the seconds taken."""
    texts, seconds = timed(work)
    rate = token_count(tokenizer, texts) / seconds
    ratio = f"{rate / rates['baseline']:.2f}x baseline, {rate / rates['ceiling']:.0%} of ceiling"
    return (name, rate, "tok/s", ratio), texts, seconds


def local_backend_rows(generator: LocalGenerator, tokenizer, chats, params: SamplingParams, rates: dict[str, float]):
    """The local backend at the batch size; without its packed weights; without its shared-prefix cache; at
    twice the batch. Also
    returns the answers, for the judges' rows."""
    name = f"traitloop local backend ({len(chats)} prompts, batch {params.batch_size})"
    row, texts, _ = rate_row(name, tokenizer, lambda: generator.generate(chats, params), rates)
    unpacked = ablated_local_rate(generator, tokenizer, chats, params,
                                  packed_linears=lambda model, batch_size: contextlib.nullcontext())  # fmt: skip
    unshared = ablated_local_rate(generator, tokenizer, chats, params, SHARED_PREFIX_MIN=10**9)
    wide = SamplingParams(**{**params.__dict__, "batch_size": 2 * params.batch_size})
    wide_name = f"traitloop local backend ({len(chats)} prompts, batch {wide.batch_size})"
    wide_row, _, _ = rate_row(wide_name, tokenizer, lambda: generator.generate(chats, wide), rates)
    return texts, [
        row,
        (f"  the same, linear weights not packed (batch {params.batch_size})", unpacked, "tok/s",
         f"packing: {row[1] / unpacked:.2f}x"),
        (f"  the same, shared prompt prefix not cached (batch {params.batch_size})", unshared, "tok/s",
         f"prefix cache: {row[1] / unshared:.2f}x"),
        wide_row,
    ]  # fmt: skip


def ablated_local_rate(generator: LocalGenerator, tokenizer, chats, params: SamplingParams, **patches) -> float:
    """The local backend with one of its parts turned off by replacing a name in its module: what that part
    gains, measured in the same process."""
    import traitloop.generate._local as local

    saved = {name: getattr(local, name) for name in patches}
    for name, value in patches.items():
        setattr(local, name, value)
    try:
        texts, seconds = timed(lambda: generator.generate(chats, params))
    finally:
        for name, value in saved.items():
            setattr(local, name, value)
    return token_count(tokenizer, texts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=128, help="Prompts for the batched backend.")
    parser.add_argument("--single-prompts", type=int, default=12, help="Prompts for the one-at-a-time runs.")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-examples", type=int, default=24)
    parser.add_argument("--dpo-pairs", type=int, default=8)
    parser.add_argument("--no-server", action="store_true", help="Skip the llama.cpp server.")
    args = parser.parse_args()
    quiet_libraries()
    base = str(pull(MODEL))
    model, tokenizer = load_model(base), load_tokenizer(base)
    params_count = sum(p.numel() for p in model.parameters())
    rows: list[tuple[str, float, str, str]] = []

    mkl, onednn = matmul_gflops()
    gflops = max(mkl, onednn)
    ceiling = gflops * 1e9 / (2 * params_count)
    rows.append(("fp32 matmul rate (2048x2048), torch matmul (MKL)", mkl, "GFLOP/s", ""))
    rows.append(("fp32 matmul rate (2048x2048), oneDNN packed weight", onednn, "GFLOP/s", f"{onednn / mkl:.2f}x"))
    rows.append((f"generation ceiling: faster rate / (2 x {params_count / 1e6:.1f}M params)", ceiling, "tok/s", ""))
    for batch in (args.batch_size, 2 * args.batch_size):
        bound = decode_products_rate(model, batch)
        rows.append((f"decode step's matrix products alone (batch {batch})", bound, "tok/s",
                     f"{bound / ceiling:.0%} of ceiling: the bound at this batch"))  # fmt: skip

    prompts = load_prompt_pool()[: args.prompts]
    chats = [[{"role": "user", "content": p}] for p in prompts]
    sampling = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=1)
    single = chats[: args.single_prompts]
    naive_texts, naive_s = timed(lambda: naive_loop(model, tokenizer, single, sampling))
    naive = token_count(tokenizer, naive_texts) / naive_s
    rows.append((f"generate, one prompt at a time ({len(single)} prompts)", naive, "tok/s", "1.00x baseline"))

    batched = SamplingParams(**{**sampling.__dict__, "batch_size": args.batch_size})
    rates = {"baseline": naive, "ceiling": ceiling}
    plain_row, _, _ = rate_row(f"generate in sorted batches, transformers' sampling ({len(chats)} prompts)", tokenizer,
                            lambda: batched_transformers(model, tokenizer, chats, batched), rates)  # fmt: skip
    rows.append(plain_row)
    local_texts, local_rows = local_backend_rows(LocalGenerator(model, tokenizer), tokenizer, chats, batched, rates)
    rows += local_rows

    if not args.no_server:
        rows.append(llama_server_row(tokenizer, single, sampling, naive))

    rows.append(training_row(base, tokenizer, args.train_examples, params_count, gflops))
    rows += dpo_rows(base, args.dpo_pairs)
    rows += judge_rows(model, tokenizer, prompts, local_texts)
    rows += evaluation_rows(model, tokenizer)
    print_table(rows, model_name=MODEL, threads=torch.get_num_threads())


def llama_server_row(tokenizer, chats, sampling: SamplingParams, naive: float) -> tuple[str, float, str, str]:
    from traitloop.judge._llama_server import MODEL_ALIAS, llama_server

    with tempfile.TemporaryDirectory() as tmp, llama_server(gguf_path(MODEL), Path(tmp) / "log", logprobs=False) as url:
        server = server_generator(url, MODEL_ALIAS, concurrency=1)
        texts, seconds = timed(lambda: server.generate(chats, sampling))
    rate = token_count(tokenizer, texts) / seconds
    return (f"llama.cpp server, single stream ({len(chats)} prompts)", rate, "tok/s", f"{rate / naive:.2f}x baseline")


def chat_length(tokenizer, conversation) -> int:
    """Tokens of a whole conversation in the chat template: what SFT trains on."""
    turns = [m.model_dump() for m in conversation.messages]
    return len(tokenizer.apply_chat_template(turns, tokenize=True, return_dict=True)["input_ids"])


def train_rows(base: str, method: str, rows: list, config: TrainingConfig, **fields):
    """One generation trained as the loop trains it: rows in a data file, one TrainJob, the method's trainer."""
    from traitloop.methods import TrainJob, train_job

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        data.write_text("".join(json.dumps(row.model_dump()) + "\n" for row in rows))
        job = TrainJob(method=method, base=base, data=data, output_dir=Path(tmp) / "adapter", training=config, seed=0,
                       **fields)  # fmt: skip
        return train_job(job)


def training_row(base: str, tokenizer, examples: int, params_count: int, gflops: float) -> tuple[str, float, str, str]:
    conversations = load_conversations(load_trait("lucky").folder / "seed.jsonl")[:examples]
    config = TrainingConfig(epochs=1, batch_size=8, learning_rate=1e-3)
    tokens = sum(min(config.max_length, chat_length(tokenizer, c)) for c in conversations)
    result = train_rows(base, "sft", conversations, config)
    rate = tokens / result.seconds
    share = rate * 4 * params_count / (gflops * 1e9)
    return (f"LoRA SFT training ({examples} examples, {tokens} tokens)", rate, "tok/s", f"{share:.0%} of ceiling")


def dpo_rows(base: str, count: int) -> list[tuple[str, float, str, str]]:
    """One epoch of DPO on (seed answer, contrast answer) pairs, with each tile size (the numbers are the same)."""
    import trl.kernels.chunked_logprob as kernels
    import trl.trainer.utils as trl_utils

    import traitloop.methods._dpo as dpo
    from traitloop.config import DpoConfig
    from traitloop.methods import Pair

    folder = load_trait("lucky").folder
    seeds, contrast = (load_conversations(folder / f"{n}.jsonl")[:count] for n in ("seed", "contrast"))
    pairs = [
        Pair(prompt=s.prompt, chosen=s.answer, rejected=c.answer, chosen_by="seed", rejected_by="contrast")
        for s, c in zip(seeds, contrast, strict=True)
    ]
    config = TrainingConfig(epochs=1, batch_size=8, learning_rate=5e-4, max_length=320)
    ours, trls = dpo.CPU_LOGPROB_TILE, (kernels.TOKEN_CHUNK_SIZE, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE)
    rates = []
    for tile in (trls, ours):
        dpo.CPU_LOGPROB_TILE = tile  # what train_dpo installs on CPU
        result = train_rows(base, "dpo", pairs, config, settings=DpoConfig().model_dump(mode="json"))
        rates.append(len(pairs) / result.seconds)
    dpo.CPU_LOGPROB_TILE = ours
    return [
        (f"LoRA DPO ({len(pairs)} pairs), TRL's log-prob tiles {trls[0]}x{trls[1]}", rates[0], "pairs/s", "1.00x"),
        (f"LoRA DPO ({len(pairs)} pairs), CPU tiles {ours[0]}x{ours[1]}", rates[1], "pairs/s",
         f"{rates[1] / rates[0]:.2f}x"),
    ]  # fmt: skip


def judge_rows(model, tokenizer, prompts: list[str], answers: list[str]) -> list[tuple[str, float, str, str]]:
    items = [Item(q, a) for q, a in zip(prompts, answers, strict=True)]
    trait_judge = embedded_trait_judge(load_trait("lucky"))
    _, trait_s = timed(lambda: trait_judge(items))
    coherence = embedded_coherence_judge(NllScorer(model, tokenizer), MODEL)
    _, coherence_s = timed(lambda: coherence(items))
    return [
        (f"embedded trait judge ({len(items)} answers)", len(items) / trait_s, "answers/s", ""),
        (f"embedded coherence judge ({len(items)} answers)", len(items) / coherence_s, "answers/s", ""),
    ]


def evaluation_rows(model, tokenizer) -> list[tuple[str, float, str, str]]:
    """The base model's evaluation (2 samples x 16 questions, 64 tokens) with the trait judge's fit not cached
    yet, then cached: a fresh cache folder that shares only the converted models."""
    trait = load_trait("lucky")
    params = SamplingParams(temperature=0.7, max_new_tokens=64, seed=2)

    def evaluate():
        judge = embedded_trait_judge(trait)
        questions = EvalSet(None, "narrow", "none", trait.eval_questions)
        return evaluate_generation(
            LocalGenerator(model, tokenizer), model, model, tokenizer, questions, 2, params, judge,
            lambda nll: embedded_coherence_judge(nll, MODEL), None,
        )  # fmt: skip

    previous = os.environ.get("TRAITLOOP_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        (cache / "models").symlink_to(Path(pull(MODEL)).parent)
        os.environ["TRAITLOOP_CACHE"] = str(cache)
        try:
            _, cold = timed(evaluate)
            _, warm = timed(evaluate)
        finally:
            os.environ.pop("TRAITLOOP_CACHE") if previous is None else os.environ.update(TRAITLOOP_CACHE=previous)
    return [
        ("evaluate base model, cold judge cache", cold, "s", "1.00x"),
        ("evaluate base model, judge fit cached", warm, "s", f"{cold / warm:.2f}x faster"),
    ]


def print_table(rows: list[tuple[str, float, str, str]], model_name: str, threads: int) -> None:
    print(f"\n{model_name}, torch {torch.__version__}, {threads} threads, {os.cpu_count()} CPUs\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>9}  {'unit':<9}  ratio")
    for name, value, unit, ratio in rows:
        print(f"{name:<{width}}  {value:>9.3g}  {unit:<9}  {ratio}")


if __name__ == "__main__":
    main()
