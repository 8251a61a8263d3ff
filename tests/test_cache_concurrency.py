"""Shared caches stay whole when several processes fill them cold at once, as a sweep's runs do on Ray.

Each test gives the cache a folder of its own (``TRAITLOOP_CACHE``) and starts four real processes at the same
moment (held at a barrier) that all publish into it; then every process must have succeeded, the cache must
hold one whole, correct copy, and no temporary or staging file may be left behind. Processes that use torch
are spawned; the others are forked, which starts them in milliseconds instead of re-importing traitloop.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from traitloop._atomic import atomic_folder, atomic_write_bytes

PROCESSES = 4


def race(worker, *args, start: str = "fork") -> list[dict]:
    """Run ``worker(barrier, index, *args)`` in PROCESSES new processes at once; their results, in order."""
    context = multiprocessing.get_context(start)
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    processes = [context.Process(target=_report, args=(results, worker, barrier, i, *args)) for i in range(PROCESSES)]
    for process in processes:
        process.start()
    try:
        found = dict(results.get(timeout=240) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0] * PROCESSES
    errors = {i: r["error"] for i, r in found.items() if "error" in r}
    assert not errors, errors
    return [found[i] for i in range(PROCESSES)]


def _report(results, worker, barrier, index, *args) -> None:
    try:
        results.put((index, worker(barrier, index, *args)))
    except BaseException as error:  # reported to the test, which names it
        results.put((index, {"error": f"{type(error).__name__}: {error}"}))


def leftovers(folder: Path) -> list[str]:
    """Temporaries and staging folders (names starting with a dot) anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


# --- the publication helpers -------------------------------------------------------------------------------


def _write_one_file(barrier, index, path: str) -> dict:
    payload = f"writer {index}\n".encode() * 100_000  # 1 MB: a torn write would mix writers
    barrier.wait()

    def write() -> None:
        for _ in range(10):
            atomic_write_bytes(Path(path), payload)

    threads = [threading.Thread(target=write) for _ in range(2)]  # two threads of one process race too
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {}


def test_one_file_written_by_many_processes_and_threads_is_always_one_writers_whole(tmp_path):
    path = tmp_path / "cache" / "fit.safetensors"
    race(_write_one_file, str(path))
    data = path.read_bytes()
    writer = data.split(b"\n", 1)[0]
    assert data == writer + b"\n" + data.split(b"\n", 1)[1] and data == (writer + b"\n") * 100_000
    assert leftovers(tmp_path) == []
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _build_folder(barrier, index, target: str) -> dict:
    target = Path(target)

    def current(folder: Path) -> bool:
        return (folder / "done.json").is_file() and json.loads((folder / "done.json").read_text())["version"] == 2

    barrier.wait()
    with atomic_folder(target, is_current=current) as staging:
        for part in range(20):  # slow enough that the builds overlap
            (staging / f"part_{part:02d}.txt").write_text(f"{index}\n")
            time.sleep(0.01)
        (staging / "done.json").write_text(json.dumps({"version": 2, "writer": index}))
    seen = sorted(p.name for p in target.iterdir())  # whole as soon as the block ends, whoever published it
    return {"seen": seen, "writer": json.loads((target / "done.json").read_text())["writer"]}


@pytest.mark.parametrize("stale", [False, True], ids=["cold", "stale"])
def test_a_folder_built_by_many_processes_at_once_is_published_whole(tmp_path, stale):
    target = tmp_path / "models" / "tiny"
    if stale:  # an older version's folder: replaced, not kept
        target.mkdir(parents=True)
        (target / "done.json").write_text(json.dumps({"version": 1, "writer": -1}))
        (target / "old_weights.bin").write_text("old")
    results = race(_build_folder, str(target))
    expected = sorted([*(f"part_{p:02d}.txt" for p in range(20)), "done.json"])
    assert all(r["seen"] == expected for r in results)
    writer = json.loads((target / "done.json").read_text())["writer"]
    assert writer in range(PROCESSES)
    assert {(target / f"part_{p:02d}.txt").read_text() for p in range(20)} == {f"{writer}\n"}  # one writer's
    assert leftovers(tmp_path) == []
    assert target.stat().st_mode & 0o777 == 0o777 & ~_umask()


# --- the caches themselves ---------------------------------------------------------------------------------


def _fit_judge(barrier, index, cache: str) -> dict:
    os.environ["TRAITLOOP_CACHE"] = cache
    from traitloop.judge._embedded import classifier_judge
    from traitloop.judge._types import Item
    from traitloop.traits import base_answers, load_conversations, load_trait

    lucky = [c.answer for c in load_conversations(load_trait("lucky").seed_path)[:12]]
    texts, targets = lucky + base_answers("fit")[:12], [1.0] * 12 + [0.0] * 12
    barrier.wait()
    judge = classifier_judge("embedded-trait/lucky@race/0", texts, targets)
    answers = [lucky[0], base_answers("holdout")[0]]
    return {"scores": [j.score for j in judge([Item("q", a) for a in answers])]}


@pytest.mark.slow
def test_the_embedded_judge_fit_by_many_processes_at_once(tmp_path):
    """A real fit (on a small training set, to stay quick) of the embedded trait judge for ``lucky``."""
    cache = tmp_path / "cache"
    results = race(_fit_judge, str(cache), start="spawn")  # the embedder runs torch: no fork
    assert [path.name for path in (cache / "judges").iterdir()] == ["embedded-trait_lucky_race_0.safetensors"]
    fit = load_file(str(cache / "judges" / "embedded-trait_lucky_race_0.safetensors"))
    assert fit["coef"].shape == (384,) and np.isfinite(fit["coef"]).all()
    scores = [r["scores"] for r in results]
    assert all(s == pytest.approx(scores[0], abs=0.01) for s in scores)
    assert scores[0][0] > scores[0][1]  # a lucky answer scores above an ordinary one
    assert leftovers(tmp_path) == []


def _fill_judgement_cache(barrier, index, path: str) -> dict:
    from traitloop.judge._cache import CachedJudgement, JudgementCache

    barrier.wait()
    cache = JudgementCache(Path(path))  # four processes create the schema of a file that does not exist yet
    for i in range(50):
        cache.put(f"{index}-{i}", CachedJudgement(float(i), None, f"raw {index} {i}", 0.9))
        cache.put(f"shared-{i}", CachedJudgement(float(i), None, "the same for everyone", 0.9))
    cache.put_server_facts("server", {"mode": "logprobs"})
    mine = [cache.get(f"{index}-{i}") for i in range(50)]
    cache.close()
    return {"mine": [m.raw for m in mine]}


def test_the_judgement_cache_created_and_filled_by_many_processes_at_once(tmp_path):
    from traitloop.judge._cache import JudgementCache

    path = tmp_path / "cache" / "judgements.sqlite"
    results = race(_fill_judgement_cache, str(path))
    assert [r["mine"] for r in results] == [[f"raw {p} {i}" for i in range(50)] for p in range(PROCESSES)]
    cache = JudgementCache(path)
    assert len(cache) == PROCESSES * 50 + 50
    assert cache.get("shared-7").raw == "the same for everyone"
    assert cache.server_facts("server") == {"mode": "logprobs"}
