"""The experiment config: one typed, validated object loaded from YAML and overridable from the CLI.

Every field that changes what a run produces lives here, so the resolved config saved in a run directory
is the whole recipe. Unknown fields are errors (``extra="forbid"``) with the closest valid name suggested.
This package checks each field and the settings that cannot work together whatever the method; which method,
judge kind and generation backend a name means, and what each accepts, their registries check
(``traitloop.loop.check_config``), so the config never imports what stands above it.

May import: io, errors.
"""

from traitloop.config._experiment import ExperimentConfig
from traitloop.config._load import (
    apply_overrides,
    config_error,
    config_to_dict,
    default_run_folder,
    load_config,
    parse_config,
    resolve_paths,
)
from traitloop.config._sections import (
    DPO_DEFAULT_LEARNING_RATE,
    MAIN_SUITE,
    NO_CONTEXT,
    DistillConfig,
    DpoConfig,
    EvaluationConfig,
    GenerationConfig,
    GenerationServer,
    JudgeConfig,
    JudgeSpec,
    LoraConfig,
    TrainingConfig,
    TrainingOverrides,
    VllmSettings,
)

__all__ = [
    "DPO_DEFAULT_LEARNING_RATE",
    "MAIN_SUITE",
    "NO_CONTEXT",
    "DistillConfig",
    "DpoConfig",
    "EvaluationConfig",
    "ExperimentConfig",
    "GenerationConfig",
    "GenerationServer",
    "JudgeConfig",
    "JudgeSpec",
    "LoraConfig",
    "TrainingConfig",
    "TrainingOverrides",
    "VllmSettings",
    "apply_overrides",
    "config_error",
    "config_to_dict",
    "default_run_folder",
    "load_config",
    "parse_config",
    "resolve_paths",
]
