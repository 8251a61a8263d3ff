"""Numeric helpers that both a run's evaluation and the analysis of finished runs use: a mean with its
question-level bootstrap CI. It stands below both, so neither imports the other.

May import: nothing of traitloop's (numpy, scipy and pydantic only).
"""

from traitloop.stats._scores import ScoreSummary, summarize_scores

__all__ = ["ScoreSummary", "summarize_scores"]
