"""The ``openai`` judge kind: a model on any OpenAI-compatible server judges trait and coherence from a prompt.

From a configured :class:`JudgeSpec` (or a ``--judge openai:MODEL@URL`` option) to a server judge.
"""

from __future__ import annotations

from traitloop._http import server_address
from traitloop._progress import Progress
from traitloop.config import JudgeSpec
from traitloop.judge._kind import JudgeKind, NllFactory
from traitloop.judge._openai import OpenAIJudge, openai_judge
from traitloop.judge._prompts import PromptKind
from traitloop.judge._types import Judge
from traitloop.traits import TraitSpec

SERVER_ONLY = ("prompt_template", "refusal_score", "code_score")  # settings of a server judge's prompt and replies


def server_judge(spec: JudgeSpec, trait: TraitSpec | None, kind: PromptKind) -> OpenAIJudge:
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


class OpenAIKind(JudgeKind):
    """A model on an OpenAI-compatible server (``model`` at ``base_url``), scored from its log-probabilities."""

    name = "openai"
    option = "openai:MODEL@URL"

    def check(self, spec: JudgeSpec) -> None:
        if not (spec.model and spec.base_url):
            raise ValueError("a judge of kind openai needs both 'model' and 'base_url'")

    def from_option(self, rest: str, api_key_env: str | None) -> JudgeSpec | None:
        address = server_address(rest)
        if address is None:
            return None
        return JudgeSpec(kind=self.name, model=address[0], base_url=address[1], api_key_env=api_key_env)

    def label(self, spec: JudgeSpec) -> str:
        return f"openai:{spec.model}@{spec.base_url}"

    def trait_judge(self, spec: JudgeSpec, trait: TraitSpec, chat: bool, progress: Progress | None = None) -> Judge:
        return server_trait_judge(spec, trait, chat)  # nothing to fit

    def trait_judge_id(self, spec: JudgeSpec, trait: TraitSpec, chat: bool) -> str:
        return server_trait_judge(spec, trait, chat).judge_id

    def coherence_judge(self, spec: JudgeSpec, nll: NllFactory, model: str) -> Judge:
        return server_judge(spec, None, "coherence")

    def coherence_judge_id(self, spec: JudgeSpec, model: str) -> str:
        return server_judge(spec, None, "coherence").judge_id
