"""Quiet libraries: the run shows its own progress (``traitloop._progress``) in place of theirs."""

from __future__ import annotations


def quiet_libraries() -> None:
    """Our own progress bars replace the libraries' per-call bars, info logs and deprecation notices."""
    import warnings

    import datasets
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
