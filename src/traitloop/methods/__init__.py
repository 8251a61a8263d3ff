"""Training methods, one module each behind one small protocol (``Method``): the data a cycle trains on, how a
generation is trained from it, what it makes and is asked. The config's list of methods and the engine's every
per-method decision come from the registry here; adding a method is one module and one line.

May import: config, io, errors, _atomic, _progress, rundir, traits, models, judge, generate, measure.
"""

import difflib

from traitloop.config import ExperimentConfig
from traitloop.methods._base import Method, Needs, RunContext, SeedSet, backend_inputs, template_inputs
from traitloop.methods._distill import Distill
from traitloop.methods._dpo import Dpo, Pair, reference_used
from traitloop.methods._launch import train_launched
from traitloop.methods._sdf import Sdf
from traitloop.methods._sft import Sft
from traitloop.methods._train import OnStep, TrainJob, TrainResult, batch_split, uses_checkpointing, weights_hash

METHODS: dict[str, Method] = {method.name: method for method in (Sft(), Dpo(), Sdf(), Distill())}


def method_names() -> list[str]:
    return list(METHODS)


def get_method(name: str) -> Method:
    """The registered method called ``name`` (``check_method`` has checked the name)."""
    return METHODS[name]


def train_job(job: TrainJob, on_step: OnStep | None = None) -> TrainResult:
    """Train one generation as ``job.method`` trains: the one entry point of in-process and launched training."""
    return get_method(job.method).train(job, on_step)


def check_method(config: ExperimentConfig) -> None:
    """Raise ``ValueError`` for a method that does not exist or settings the run's method would silently ignore;
    let the method check (and default) its own settings."""
    if config.method not in METHODS:
        close = difflib.get_close_matches(config.method, method_names(), n=1)
        hint = f" - did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"method: unknown method {config.method!r}; the methods are {', '.join(METHODS)}{hint}")
    method = METHODS[config.method]
    for other in METHODS.values():
        for section in set(other.owns) - set(method.owns):
            if getattr(config, section) != type(getattr(config, section))():
                raise ValueError(
                    f"the {section} section applies only with method: {other.name} (method is {config.method})"
                )
    if not method.chat and (config.evaluation.suites or config.evaluation.contexts):
        raise ValueError(
            f"evaluation.suites and contexts are chat questions; method {config.method} continues documents"
        )
    used = config.sampling_filters() + (["mix_seed_examples"] if config.mix_seed_examples else [])
    if used and not method.filters_samples:
        filtering = " or ".join(m.name for m in METHODS.values() if m.filters_samples)
        raise ValueError(f"{', '.join(used)} applies only with method: {filtering} (method is {config.method})")
    method.check_config(config)


__all__ = [
    "METHODS",
    "Method",
    "Needs",
    "OnStep",
    "Pair",
    "RunContext",
    "SeedSet",
    "TrainJob",
    "TrainResult",
    "backend_inputs",
    "batch_split",
    "check_method",
    "get_method",
    "method_names",
    "reference_used",
    "template_inputs",
    "train_job",
    "train_launched",
    "uses_checkpointing",
    "weights_hash",
]
