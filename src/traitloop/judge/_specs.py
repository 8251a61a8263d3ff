"""From a configured :class:`JudgeSpec` (or a ``--judge`` option) to a server judge."""

from __future__ import annotations

from traitloop._http import parse_server_option
from traitloop.config import JudgeSpec
from traitloop.judge._openai import OpenAIJudge, openai_judge
from traitloop.judge._prompts import JudgeKind
from traitloop.traits import TraitSpec


def parse_judge_option(text: str, api_key_env: str | None = None) -> JudgeSpec:
    """``embedded`` or ``openai:MODEL@URL`` (e.g. ``openai:gpt-4o-mini@https://api.openai.com/v1``)."""
    if text.strip() == "embedded":
        return JudgeSpec()
    model, base_url = parse_server_option(text, "--judge", "embedded")
    return JudgeSpec(kind="openai", model=model, base_url=base_url, api_key_env=api_key_env)


def judge_label(spec: JudgeSpec) -> str:
    """How a judge is named in tables: ``embedded`` or ``openai:MODEL@URL``."""
    return "embedded" if spec.kind == "embedded" else f"openai:{spec.model}@{spec.base_url}"


def server_judge(spec: JudgeSpec, trait: TraitSpec | None, kind: JudgeKind) -> OpenAIJudge:
    """The server judge a spec of kind ``openai`` describes, judging chat answers for the trait, SDF documents
    for its belief, or coherence."""
    assert spec.model and spec.base_url  # the spec's validator ensures both for kind openai
    return openai_judge(
        trait,
        spec.model,
        spec.base_url,
        kind=kind,
        api_key_env=spec.api_key_env,
        concurrency=spec.concurrency,
        timeout=spec.timeout,
        max_retries=spec.max_retries,
        samples=spec.samples,
        tokenizer=spec.tokenizer,
        cache_path=spec.cache,
        prompt_template=spec.prompt_template,
        refusal_score=spec.refusal_score,
        code_score=spec.code_score,
    )


def server_trait_judge(spec: JudgeSpec, trait: TraitSpec, chat: bool) -> OpenAIJudge:
    """The server trait judge for a method's texts: chat answers (``chat``), or documents for the belief in the
    trait's SDF recipe, which have their own prompt."""
    return server_judge(spec, trait, "trait" if chat else "document")
