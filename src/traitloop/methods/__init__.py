"""Training methods, one module each behind one small protocol (``Method``): the data a cycle trains on, how a
generation is trained from it, how an evaluation asks, which judges fit. The config's list of methods and the
engine's every per-method decision come from the registry here; adding a method is one module and one line."""

from traitloop.methods._base import Method, SeedSet, backend_inputs
from traitloop.methods._distill import Distill
from traitloop.methods._dpo import Dpo, Pair, reference_used
from traitloop.methods._launch import train_launched
from traitloop.methods._sdf import Sdf
from traitloop.methods._sft import Sft
from traitloop.methods._train import OnStep, TrainJob, TrainResult, weights_hash

METHODS: dict[str, Method] = {method.name: method for method in (Sft(), Dpo(), Sdf(), Distill())}


def method_names() -> list[str]:
    return list(METHODS)


def get_method(name: str) -> Method:
    """The registered method called ``name`` (the config has checked the name)."""
    return METHODS[name]


def train_job(job: TrainJob, on_step: OnStep | None = None) -> TrainResult:
    """Train one generation as ``job.method`` trains: the one entry point of in-process and launched training."""
    return get_method(job.method).train(job, on_step)


__all__ = [
    "METHODS",
    "Method",
    "OnStep",
    "Pair",
    "SeedSet",
    "TrainJob",
    "TrainResult",
    "backend_inputs",
    "get_method",
    "method_names",
    "reference_used",
    "train_job",
    "train_launched",
    "weights_hash",
]
