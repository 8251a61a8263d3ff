"""Statistics over a run's evaluations: per-cycle means with question-level bootstrap CIs, and the summary."""

from traitloop.analysis._stats import ScoreSummary, summarize_scores

__all__ = ["ScoreSummary", "summarize_scores"]
