"""The registry of judge kinds, and what works on any kind through it: checking a spec, reading a ``--judge``
option, naming a judge in tables."""

from __future__ import annotations

from traitloop.config import JudgeSpec
from traitloop.errors import UserError
from traitloop.judge._kind import JudgeKind
from traitloop.judge._kind_embedded import EmbeddedKind
from traitloop.judge._kind_openai import OpenAIKind

JUDGE_KINDS: dict[str, JudgeKind] = {kind.name: kind for kind in (EmbeddedKind(), OpenAIKind())}


def judge_kind(spec: JudgeSpec) -> JudgeKind:
    """The kind that makes ``spec``'s judges (``check_judge_spec`` has checked its name)."""
    return JUDGE_KINDS[spec.kind]


def check_judge_spec(spec: JudgeSpec) -> None:
    """Raise ``ValueError`` for a kind that does not exist, or settings the spec's kind cannot use."""
    if spec.kind not in JUDGE_KINDS:
        raise ValueError(f"unknown judge kind {spec.kind!r}; the kinds are {', '.join(JUDGE_KINDS)}")
    JUDGE_KINDS[spec.kind].check(spec)


def parse_judge_option(text: str, api_key_env: str | None = None) -> JudgeSpec:
    """A ``--judge`` option: a kind's name, with what it needs after ``:`` (``embedded``, ``openai:MODEL@URL``)."""
    text = text.strip()
    name, _, rest = text.partition(":")
    spec = JUDGE_KINDS[name].from_option(rest, api_key_env) if name in JUDGE_KINDS else None
    if spec is None:
        forms = " or ".join(f"'{kind.option}'" for kind in JUDGE_KINDS.values())
        raise UserError(f"bad --judge '{text}': expected {forms} (URL starting http)")
    return spec


def judge_label(spec: JudgeSpec) -> str:
    """How a judge is named in tables: its ``--judge`` option (``embedded``, ``openai:MODEL@URL``)."""
    return judge_kind(spec).label(spec)
