"""The task suite sweeps run on: tasks built on the zoo's domains, each with train and eval splits, a metric,
and a ``task_info`` (type, complexity, capabilities, description) that the meta-braider learns from.

Task types differ in what they need (fluent prose, code, exact arithmetic, recall of memorised facts), so the
best braid differs between them: the sweep shows it, and the meta-braider learns it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TaskType = Literal["language_modeling", "code_completion", "arithmetic", "fact_recall"]
Metric = Literal["char_perplexity", "exact_match"]
METRIC_OF_TYPE: dict[str, Metric] = {
    "language_modeling": "char_perplexity",
    "code_completion": "char_perplexity",
    "arithmetic": "exact_match",
    "fact_recall": "exact_match",
}
DOMAIN_OF_TYPE = {
    "language_modeling": "prose",
    "code_completion": "code",
    "arithmetic": "arithmetic",
    "fact_recall": "facts",
}


class TaskInfo(BaseModel):
    """What the meta-braider sees of a task."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    type: TaskType
    domain: str
    metric: Metric
    complexity: int = Field(ge=1, le=5)
    capabilities: tuple[str, ...] = ()
    description: str = Field(min_length=1)


class TaskSpec(BaseModel):
    """A task and the size of its splits (YAML: a list of these under ``tasks:``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    type: TaskType
    complexity: int = Field(3, ge=1, le=5)
    capabilities: tuple[str, ...] = ()
    description: str | None = None
    n_train: int = Field(64, ge=4)
    n_eval: int = Field(16, ge=2)
    seed: int = 0

    @property
    def info(self) -> TaskInfo:
        return TaskInfo(
            name=self.name,
            type=self.type,
            domain=DOMAIN_OF_TYPE[self.type],
            metric=METRIC_OF_TYPE[self.type],
            complexity=self.complexity,
            capabilities=self.capabilities or DEFAULT_CAPABILITIES[self.type],
            description=self.description or DEFAULT_DESCRIPTIONS[self.type],
        )

    # what a sweep trial needs of a task (``tune.trainable.run_trial``); ``tune.compound``'s tasks match it
    def train_items(self) -> list:
        return task_data(self).train

    def cost_prompt(self) -> str:
        return task_data(self).eval[0].prompt

    def evaluate(self, braided, temperature: float = 0.0, seed: int = 0) -> dict[str, float]:
        return evaluate_task(braided, self, temperature, seed)


DEFAULT_CAPABILITIES = {
    "language_modeling": ("english", "fluency"),
    "code_completion": ("python", "syntax"),
    "arithmetic": ("arithmetic", "exact-answer"),
    "fact_recall": ("knowledge", "exact-answer"),
}
DEFAULT_DESCRIPTIONS = {
    "language_modeling": "Continue English technical prose about Python fluently.",
    "code_completion": "Continue Python standard-library source code.",
    "arithmetic": "Answer sums and differences of numbers up to 999 exactly.",
    "fact_recall": "Recall the value stored for a three-letter key, exactly.",
}


class TaskSuite(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    tasks: tuple[TaskSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> TaskSuite:
        names = [t.name for t in self.tasks]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"duplicate task names: {dupes}")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> TaskSuite:
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.model_validate(data if isinstance(data, dict) else {"tasks": data})

    @classmethod
    def default(cls, n_train: int = 64, n_eval: int = 16) -> TaskSuite:
        kinds = [("prose-lm", "language_modeling", 2), ("code-lm", "code_completion", 3)]
        kinds += [("arith-qa", "arithmetic", 4), ("facts-qa", "fact_recall", 3)]
        return cls(
            tasks=[
                TaskSpec(name=n, type=t, complexity=c, n_train=n_train, n_eval=n_eval) for n, t, c in kinds
            ]
        )


@dataclass(frozen=True)
class EvalItem:
    prompt: str  # for char_perplexity: the whole text
    answer: str = ""


@dataclass(frozen=True)
class TaskData:
    train: list[str]
    eval: list[EvalItem]


@lru_cache(maxsize=16)
def task_data(spec: TaskSpec) -> TaskData:
    """Deterministic train and eval splits; eval items never occur in train."""
    from braid.zoo.domains import get_domain

    domain = get_domain(DOMAIN_OF_TYPE[spec.type], seed=spec.seed)
    train = domain.train[: spec.n_train]
    held = domain.held_out
    if spec.type in ("arithmetic", "fact_recall"):
        items = _qa_items(held, spec.n_eval, spec.seed)
    else:
        items = [EvalItem(prompt=t) for t in held[: spec.n_eval]]
    return TaskData(train=train, eval=items)


def _qa_items(texts: list[str], n: int, seed: int) -> list[EvalItem]:
    """Split held-out lines into (context + question, answer): the last statement's value is the answer."""
    rng = random.Random(seed)
    items = []
    for text in texts:
        statements = text.split(" ")
        last = statements[-1].rstrip(".")
        question, _, answer = last.partition("=")
        context = " ".join(statements[:-1])
        items.append(EvalItem(prompt=f"{context} {question}=", answer=answer))
    rng.shuffle(items)
    return items[:n]


BYTE_NATS = math.log(256.0)  # a character the anchor cannot write costs what a uniform guess over bytes does


def evaluate_task(braided, spec: TaskSpec, temperature: float = 0.0, seed: int = 0) -> dict[str, float]:
    """The task's metric, and ``score`` (higher is better, comparable across a task's trials).

    Perplexity tasks: per-character perplexity, so anchors with different tokenizers compare. Characters the
    anchor's tokenizer cannot write (unknown tokens hide them) each cost ln 256 nats, the byte-uniform
    guess, and the rest is scored as usual: such an anchor never wins, yet its braids still rank among
    themselves (ASHA needs that to tell trials apart). Exact-answer tasks: exact match and the answer's
    correct-prefix share of greedy (or sampled) answers; the score is the negative NLL per character of the
    correct answer given the question (teacher-forced, as likelihood-scored evals do): it moves with every
    step of training, where exact match on small models is mostly flat at 0, so early stopping can rank."""
    from braid.zoo.evaluate import member_logits

    items = task_data(spec).eval
    if spec.info.metric == "char_perplexity":
        ppl = graded_char_perplexity(member_logits(braided), braided.tokenizer, [i.prompt for i in items])
        return {"char_perplexity": ppl, "score": -math.log(ppl)}
    exact, prefix = 0, 0.0
    for i, item in enumerate(items):
        out = braided.generate(
            item.prompt, max_new_tokens=6, temperature=temperature, seed=seed + i, stop=[".", " "]
        )
        out = out.strip().rstrip(".")
        exact += out == item.answer
        prefix += _common_prefix(out, item.answer) / len(item.answer)
    nll = answer_nll(member_logits(braided), braided.tokenizer, items)
    return {
        "exact_match": exact / len(items),
        "prefix_share": prefix / len(items),
        "answer_nll": nll,
        "score": -nll,
    }


def answer_nll(logits_fn, tokenizer, items: list[EvalItem]) -> float:
    """Nats per answer character of the correct answers after their prompts (tokens ending past the prompt
    count as the answer's), charging ln 256 for each answer character the tokenizer cannot write: an unknown
    token is cheap to predict, and an anchor that cannot write the answer must not win on it."""
    import torch
    import torch.nn.functional as F

    total, chars = 0.0, 0
    for item in items:
        enc = tokenizer(item.prompt + item.answer, return_tensors="pt", return_offsets_mapping=True)
        ids = enc["input_ids"]
        with torch.no_grad():
            logits = logits_fn(ids, enc["attention_mask"]).float()  # (1, T, V)
        nll = F.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="none")  # (T-1,)
        answer = enc["offset_mapping"][0, 1:, 1] > len(item.prompt)
        total += float(nll[answer].sum()) + _lost_chars(tokenizer, item.answer) * BYTE_NATS
        chars += len(item.answer)
    return total / max(chars, 1)


def _lost_chars(tokenizer, text: str) -> int:
    written = tokenizer.decode(
        tokenizer(text, add_special_tokens=False)["input_ids"], skip_special_tokens=True
    )
    return len(text) - _kept_chars(text, written)


def _kept_chars(text: str, written: str) -> int:
    """Characters of ``text`` that survive in ``written`` (what the tokenizer wrote back), in order."""
    from difflib import SequenceMatcher

    return sum(b.size for b in SequenceMatcher(None, text, written, autojunk=False).get_matching_blocks())


def graded_char_perplexity(logits_fn, tokenizer, texts: list[str]) -> float:
    """Per-character perplexity over ``texts``, charging ln 256 for each character the tokenizer loses."""
    from braid.zoo.evaluate import char_nll

    written = [tokenizer.decode(tokenizer(t)["input_ids"], skip_special_tokens=True) for t in texts]
    total, _ = char_nll(logits_fn, tokenizer, written)
    kept = sum(_kept_chars(t, w) for t, w in zip(texts, written, strict=True))
    chars = sum(len(t) for t in texts)
    return math.exp((total + (chars - kept) * BYTE_NATS) / max(chars, 1))


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n
