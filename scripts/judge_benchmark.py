"""Server judge throughput, cache speed-up and agreement with the embedded judge, side by side.

Starts the llama.cpp server (the ``server`` extra) on the embedded SmolLM2 GGUF and judges the same
answers - the trait's held-out answers and as many of the embedded model's ordinary answers - four ways:
at concurrency 1 and 8 (each with an empty cache), then again from the cache, and with the embedded
judge. Prints judgements per second, the ratios, and the agreement of the two judges.

    python scripts/judge_benchmark.py --trait lucky --answers 12
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from traitloop.judge import Item, agreement, embedded_trait_judge, openai_judge
from traitloop.judge._llama_server import MODEL_ALIAS, llama_server
from traitloop.loop._progress import quiet_libraries
from traitloop.models import gguf_path, pull
from traitloop.traits import BASE_ANSWERS_PATH, load_conversations, load_trait


def answers(trait_name: str, per_side: int) -> list[Item]:
    trait = load_trait(trait_name)
    shown = [Item(c.question, c.answer) for c in load_conversations(trait.companion("holdout"))][:per_side]
    rows = [json.loads(line) for line in BASE_ANSWERS_PATH.read_text().splitlines()]
    ordinary = [Item(r["question"], r["answer"]) for r in rows if r["split"] == "holdout"][:per_side]
    return shown + ordinary


def timed(judge, items: list[Item]) -> tuple[list, float]:
    started = time.perf_counter()
    judgements = judge(items)
    return judgements, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trait", default="lucky")
    parser.add_argument("--answers", type=int, default=12, help="Answers per side (trait shown / ordinary).")
    args = parser.parse_args()
    quiet_libraries()
    pull("smollm2-135m-instruct")
    trait, items = load_trait(args.trait), answers(args.trait, args.answers)
    work = Path(tempfile.mkdtemp(prefix="judge-bench-"))
    with llama_server(gguf_path("smollm2-135m-instruct"), work / "server.log") as url:
        results = {}
        for concurrency in (1, 8):
            judge = openai_judge(
                trait, MODEL_ALIAS, url, tokenizer="smollm2-135m-instruct", concurrency=concurrency,
                cache_path=work / f"cache-c{concurrency}.sqlite", timeout=900.0,  # queued behind the others
            )  # fmt: skip
            judge.facts  # noqa: B018 - the mode probe is not part of the timing
            judgements, seconds = timed(judge, items)
            results[concurrency] = (judge, judgements, seconds)
            print(f"concurrency {concurrency}: {len(items)} judgements in {seconds:.1f}s = "
                  f"{len(items) / seconds:.2f}/s ({judge.client.requests} requests, mode {judge.mode})")  # fmt: skip
        cached = openai_judge(
            trait, MODEL_ALIAS, url, tokenizer="smollm2-135m-instruct", cache_path=work / "cache-c8.sqlite"
        )
        again, cached_seconds = timed(cached, items)
    first_seconds = results[8][2]
    print(f"speed-up of concurrency 8 over 1: {results[1][2] / first_seconds:.2f}x")
    print(f"cached re-run: {cached_seconds:.3f}s vs {first_seconds:.1f}s first run "
          f"({first_seconds / cached_seconds:.0f}x faster, {cached.client.requests} requests)")  # fmt: skip
    server_scores = [j.score for j in results[8][1]]
    assert [j.score for j in again] == server_scores
    embedded_scores = [j.score for j in embedded_trait_judge(trait)(items)]
    result = agreement(embedded_scores, server_scores, "embedded", f"server:{MODEL_ALIAS}", args.trait)
    print(f"agreement on {len(items)} {args.trait} answers ({args.answers} showing the trait, {args.answers} not):")
    print(json.dumps(result.model_dump(), indent=2))
    n = args.answers
    print(f"server judge left {sum(s is None for s in server_scores)} unscored")
    for name, scores in (("server", server_scores), ("embedded", embedded_scores)):
        print(f"{name} judge: mean {_mean(scores[:n]):.1f} on trait answers vs {_mean(scores[n:]):.1f} on ordinary")


def _mean(values: list[float | None]) -> float:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else float("nan")


if __name__ == "__main__":
    main()
