"""Text domains that exist offline wherever Python runs, each split into train and held-out texts.

Registry keyed by name; every domain is deterministic given its seed.
"""

from __future__ import annotations

import random
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from braid.zoo.corpora import FactsDomain, stdlib_prose


@dataclass(frozen=True)
class DomainData:
    name: str
    description: str
    train: list[str]
    held_out: list[str]


def _split(name: str, description: str, texts: list[str], seed: int, held_out: float = 0.1) -> DomainData:
    texts = sorted(set(texts))
    random.Random(seed).shuffle(texts)
    n = max(1, int(len(texts) * held_out))
    return DomainData(name, description, texts[n:], texts[:n])


def prose(seed: int = 0) -> DomainData:
    """English: standard-library docstrings and the reference topics of pydoc_data."""
    import pydoc_data.topics

    paragraphs = list(stdlib_prose())
    for _, body in sorted(pydoc_data.topics.topics.items()):
        for para in body.split("\n\n"):
            text = " ".join(para.split())
            if (
                len(text.split()) >= 8
                and text.isascii()
                and sum(c.isalpha() or c == " " for c in text) >= 0.85 * len(text)
            ):
                paragraphs.append(text[:400])
    return _split(
        "prose", "English prose: stdlib docstrings and pydoc_data reference topics", paragraphs, seed
    )


def code(seed: int = 0, max_files: int = 40) -> DomainData:
    """Python: source of the first standard-library modules (alphabetical), in chunks of 12 lines."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    chunks = []
    for path in sorted(lib.glob("*.py"))[:max_files]:
        lines = [
            line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()
        ]
        chunks += ["\n".join(lines[i : i + 12]) for i in range(0, len(lines), 12)]
    return _split(
        "code", f"Python source of {max_files} standard-library modules", [c[:400] for c in chunks], seed
    )


def arithmetic(seed: int = 0, count: int = 6000) -> DomainData:
    """Sums and differences of 1-3 digit numbers, four to a line."""
    rng = random.Random(seed)

    def one() -> str:
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        return f"{a}+{b}={a + b}" if rng.random() < 0.6 else f"{max(a, b)}-{min(a, b)}={abs(a - b)}"

    return _split(
        "arithmetic",
        "synthetic: sums and differences of 1-3 digit numbers",
        [" ".join(one() for _ in range(4)) for _ in range(count)],
        seed,
    )


def facts(seed: int = 0, count: int = 3000) -> DomainData:
    """200 random key=value facts. Held-out texts recombine the same facts: knowledge, not generalisation."""
    domain = FactsDomain.make(200, seed=seed)
    texts = domain.texts(count, seed=seed)
    return DomainData(
        "facts", "synthetic: 200 random 3-letter key=value facts", texts[count // 10 :], texts[: count // 10]
    )


DOMAINS: dict[str, Callable[[int], DomainData]] = {
    "prose": prose,
    "code": code,
    "arithmetic": arithmetic,
    "facts": facts,
}


def get_domain(name: str, seed: int = 0) -> DomainData:
    if name not in DOMAINS:
        raise ValueError(f"unknown domain {name!r}; valid: {', '.join(sorted(DOMAINS))}")
    return DOMAINS[name](seed)
