"""Write the embedded model's ordinary answers that the embedded trait judge learns "no trait" from.

Run once (about 5 minutes on 2 CPU cores); the output ships in the package:
    python scripts/make_base_answers.py [--count 240] [--holdout 60]
Rows are ``{"question", "answer", "split"}``; ``split`` is ``fit`` (used to fit judges) or ``holdout``
(used only by ``scripts/validate_judges.py``).
"""

from __future__ import annotations

import argparse
import json
import random

from traitloop.generate import LocalGenerator, SamplingParams
from traitloop.models import load_model, load_tokenizer, resolve_model
from traitloop.traits import BASE_ANSWERS_PATH, load_prompt_pool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=240)
    parser.add_argument("--holdout", type=int, default=60)
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    prompts = load_prompt_pool()
    random.Random(args.seed).shuffle(prompts)
    prompts = prompts[: args.count]
    base = resolve_model("smollm2-135m-instruct")
    generator = LocalGenerator(load_model(base), load_tokenizer(base))
    params = SamplingParams(temperature=0.7, top_p=1.0, max_new_tokens=160, batch_size=16, seed=args.seed)
    answers = generator.generate([[{"role": "user", "content": p}] for p in prompts], params)
    with BASE_ANSWERS_PATH.open("w", encoding="utf-8") as out:
        for i, (question, answer) in enumerate(zip(prompts, answers, strict=True)):
            split = "holdout" if i >= args.count - args.holdout else "fit"
            out.write(json.dumps({"question": question, "answer": answer, "split": split}) + "\n")
    print(f"wrote {len(answers)} answers to {BASE_ANSWERS_PATH}")


if __name__ == "__main__":
    main()
