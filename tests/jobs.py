"""Training one generation in tests the way the loop does: rows in a data file, one TrainJob, the method trains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from traitloop.config import TrainingConfig
from traitloop.methods import TrainJob, TrainResult, train_job


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def job(
    model: Path, output_dir: Path, rows: list[Any], method: str, training: TrainingConfig, **fields: Any
) -> TrainJob:
    """A job training ``output_dir`` from ``rows`` (pydantic rows are dumped), its data beside it."""
    plain = [row.model_dump() if hasattr(row, "model_dump") else row for row in rows]
    data = write_jsonl(output_dir.with_name(output_dir.name + ".train.jsonl"), plain)
    return TrainJob(method=method, base=str(model), data=data, output_dir=output_dir, training=training, **fields)


def train(
    model: Path, output_dir: Path, rows: list[Any], method: str, training: TrainingConfig, **fields
) -> TrainResult:
    on_step = fields.pop("on_step", None)
    return train_job(job(model, output_dir, rows, method, training, **fields), on_step)
