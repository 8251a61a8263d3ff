"""Generation backends behind one small interface: conversations in, answer texts out."""

from traitloop.generate._local import LocalGenerator, SamplingParams

__all__ = ["LocalGenerator", "SamplingParams"]
