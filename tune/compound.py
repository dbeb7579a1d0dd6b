"""Tasks over more than one expert's knowledge, for sweeps and the architecture search (``tune.arch``):

- ``CompositionTask``: the zoo's composition probe (``braid.zoo.composition``): answer ``key=`` with the
  letters expert's word and the digit expert's digit, ``abc|7``, which no member knows alone;
- ``MixtureTask``: language modelling on the union of several zoo domains (bench/quality.py's pairs).

Each has what a trial needs of a task (``train_items``, ``cost_prompt``, ``evaluate``, ``info``), like
``tune.tasks.TaskSpec``, and three disjoint splits: the fusion trains on ``train``, a search ranks trials on
``evaluate`` (the validation split) and a benchmark reports the winner on ``test``, which no choice saw.
"""

from __future__ import annotations

import math
import random

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tune.tasks import EvalItem, TaskInfo, answer_nll, graded_char_perplexity


class CompositionTask(BaseModel):
    """Keys ``train_keys`` train the fusion, ``val_keys`` rank trials, ``test_keys`` report the winner.
    ``tokenizer``: the directory of the experts' shared tokenizer (``build_models`` saves it with each)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = "composition"
    seed: int = 0
    tokenizer: str
    train_keys: tuple[int, int] = (0, 30)
    val_keys: tuple[int, int] = (30, 40)
    test_keys: tuple[int, int] = (40, 60)
    n_train: int = Field(400, ge=8, description="training texts, four composed answers each")

    @property
    def info(self) -> TaskInfo:
        return TaskInfo(
            name=self.name, type="fact_recall", domain="facts", metric="exact_match", complexity=5,
            capabilities=("knowledge", "exact-answer", "composition"),
            description="Answer key= with the letters expert's word and the digit expert's digit, abc|7.",
        )  # fmt: skip

    def rows(self, keys: tuple[int, int]) -> list[tuple[str, str, str]]:
        from braid.zoo.composition import task

        return task(self.seed)[keys[0] : keys[1]]

    def train_items(self) -> list[dict[str, list[int]]]:
        from transformers import AutoTokenizer

        from braid.zoo.composition import training_set

        tok = AutoTokenizer.from_pretrained(self.tokenizer)
        return training_set(tok, self.rows(self.train_keys), self.seed + 4, self.n_train)

    def cost_prompt(self) -> str:
        return f"{self.rows(self.val_keys)[0][0]}="

    def evaluate(self, braided, temperature: float = 0.0, seed: int = 0) -> dict[str, float]:
        return self._scores(braided, self.val_keys)

    def test(self, braided) -> dict[str, float]:
        return self._scores(braided, self.test_keys)

    def _scores(self, braided, keys: tuple[int, int]) -> dict[str, float]:
        """Exact greedy answers (and each half), and the correct answer's NLL per character (the score)."""
        from braid.zoo.composition import accuracy
        from braid.zoo.evaluate import member_logits

        rows = self.rows(keys)
        exact, letters, digit = accuracy(
            lambda p: braided.generate(p, max_new_tokens=8, stop=".").strip(), rows
        )
        items = [EvalItem(prompt=f"{k}=", answer=f"{v}|{d}") for k, v, d in rows]
        nll = answer_nll(member_logits(braided), braided.tokenizer, items)
        return {"exact_match": exact, "letters": letters, "digit": digit, "answer_nll": nll, "score": -nll}


class MixtureTask(BaseModel):
    """Per-character perplexity on the union of ``domains``: each domain's first ``n_eval`` held-out texts
    rank trials, the next ``n_test`` (default ``n_eval``) are the test split."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    domains: tuple[str, ...] = Field(min_length=2)
    n_train: int = Field(64, ge=4, description="training texts per domain")
    n_eval: int = Field(16, ge=2, description="validation texts per domain")
    n_test: int | None = Field(None, ge=2, description="test texts per domain (default: n_eval)")
    seed: int = 0

    @model_validator(mode="after")
    def _known(self) -> MixtureTask:
        from braid.zoo.domains import DOMAINS, get_domain

        if unknown := sorted(set(self.domains) - set(DOMAINS)):
            raise ValueError(f"unknown domains {unknown}; valid: {sorted(DOMAINS)}")
        need = self.n_eval + (self.n_test or self.n_eval)
        if short := [d for d in self.domains if len(get_domain(d).held_out) < need]:
            raise ValueError(f"domains {short} hold fewer than n_eval + n_test = {need} held-out texts")
        return self

    @property
    def info(self) -> TaskInfo:
        return TaskInfo(
            name=self.name, type="language_modeling", domain="+".join(self.domains), metric="char_perplexity",
            complexity=3, capabilities=tuple(self.domains),
            description=f"Model text of the {' and '.join(self.domains)} domains, mixed.",
        )  # fmt: skip

    def train_items(self) -> list[str]:
        from braid.zoo.domains import get_domain

        texts = [t for d in self.domains for t in get_domain(d).train[: self.n_train]]
        random.Random(self.seed).shuffle(texts)
        return texts

    def split(self, part: int) -> dict[str, list[str]]:
        from braid.zoo.domains import get_domain

        lo, n = (0, self.n_eval) if part == 0 else (self.n_eval, self.n_test or self.n_eval)
        return {d: get_domain(d).held_out[lo : lo + n] for d in self.domains}

    def cost_prompt(self) -> str:
        return self.split(0)[self.domains[0]][0]

    def evaluate(self, braided, temperature: float = 0.0, seed: int = 0) -> dict[str, float]:
        return self._scores(braided, self.split(0))

    def test(self, braided) -> dict[str, float]:
        return self._scores(braided, self.split(1))

    def _scores(self, braided, sets: dict[str, list[str]]) -> dict[str, float]:
        """Each domain's character perplexity, and the union's (its score: -ln, higher is better)."""
        from braid.zoo.evaluate import member_logits

        logits = member_logits(braided)
        out = {
            f"char_perplexity_{d}": graded_char_perplexity(logits, braided.tokenizer, t)
            for d, t in sets.items()
        }
        union = graded_char_perplexity(logits, braided.tokenizer, [t for ts in sets.values() for t in ts])
        return {**out, "char_perplexity": union, "score": -math.log(union)}
