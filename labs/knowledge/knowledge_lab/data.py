"""Synthetic biographies: individuals, attributes, templates and a word-level vocabulary.

Follows the setup of Zucchet et al. 2025 ("How do language models learn facts?"): each
individual has a unique two-word name and 6 attributes; each attribute has 25 sentence
templates, 20 used for training and 5 held out to measure *knowledge* rather than memorised
wording; a biography is one sentence per attribute in random order. Tokens are whole words so
that an attribute value is a known, fixed set of positions whose loss we can read off.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import torch

PAD, BOS, DOT = "<pad>", "<bos>", "."
N_TEMPLATES, N_TRAIN_TEMPLATES = 25, 20

_SYL_A = ["ka", "lo", "mi", "ren", "to", "sa", "vel", "dor", "an", "bri", "cal", "fen"]
_SYL_B = ["na", "ri", "mo", "la", "vin", "sek", "ter", "dra", "po", "lin", "mar", "quo"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

# 5 adverbials x 5 verb phrases = 25 templates per attribute.
ADVERBS = [[], ["reportedly"], ["notably"], ["in", "fact"], ["as", "records", "show"]]
VERBS: dict[str, list[list[str]]] = {
    "birth_date": [
        ["was", "born", "on"],
        ["came", "into", "the", "world", "on"],
        ["has", "a", "birthday", "on"],
        ["was", "delivered", "on"],
        ["first", "saw", "light", "on"],
    ],
    "birth_city": [
        ["was", "born", "in"],
        ["grew", "up", "in"],
        ["spent", "childhood", "in"],
        ["hails", "from"],
        ["is", "a", "native", "of"],
    ],
    "university": [
        ["studied", "at"],
        ["graduated", "from"],
        ["attended"],
        ["was", "educated", "at"],
        ["earned", "a", "degree", "at"],
    ],
    "major": [
        ["majored", "in"],
        ["studied", "the", "field", "of"],
        ["specialised", "in"],
        ["focused", "on"],
        ["chose", "to", "study"],
    ],
    "employer": [
        ["worked", "for"],
        ["was", "employed", "by"],
        ["had", "a", "job", "at"],
        ["joined", "the", "staff", "of"],
        ["built", "a", "career", "at"],
    ],
    "work_city": [
        ["worked", "in"],
        ["had", "an", "office", "in"],
        ["commuted", "to"],
        ["was", "based", "in"],
        ["made", "a", "living", "in"],
    ],
}
ATTRIBUTES = list(VERBS)
# Value sets small enough that even a few hundred people cover them, so the empirical value
# statistics (the no-knowledge baseline) are close to the generating ones.
_CATEGORY_SIZES = {"city": 50, "university": 30, "major": 20, "employer": 40}
YEARS = range(1950, 2000)


def _words(prefix: str, count: int, suffix: str) -> list[str]:
    """Deterministic pronounceable words, e.g. 'Kanaton'; distinct per category via the suffix."""
    combos = itertools.product(_SYL_A, _SYL_B, _SYL_A)
    return [f"{prefix}{(a + b + c).capitalize()}{suffix}" for a, b, c in itertools.islice(combos, count)]


def _ordinal(d: int) -> str:
    return f"{d}{'th' if 10 <= d <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(d % 10, 'th')}"


def value_choices() -> dict[str, list[tuple[str, ...]]]:
    """Each attribute's possible values, as token tuples (a birth date is day, month, year)."""
    cities = [(w,) for w in _words("", _CATEGORY_SIZES["city"], "ton")]
    return {
        "birth_date": [(_ordinal(d), m, str(y)) for d in range(1, 29) for m in MONTHS for y in YEARS],
        "birth_city": cities,
        "university": [(w,) for w in _words("", _CATEGORY_SIZES["university"], "U")],
        "major": [(w,) for w in _words("", _CATEGORY_SIZES["major"], "ics")],
        "employer": [(w,) for w in _words("", _CATEGORY_SIZES["employer"], "Corp")],
        "work_city": cities,
    }


@dataclass
class Templates:
    """Per attribute: 25 (adverb, verb) templates, split into train and held-out by a seed."""

    train: dict[str, list[list[str]]]
    heldout: dict[str, list[list[str]]]

    @classmethod
    def build(cls, seed: int) -> Templates:
        rng = np.random.default_rng(seed)
        train, heldout = {}, {}
        for attr, verbs in VERBS.items():
            # Held out: one 'diagonal' of the 5x5 grid, so every adverb and verb phrase still
            # occurs in training and held-out templates test new combinations, not new words.
            perm = rng.permutation(len(verbs))
            held = {(i, int(perm[i])) for i in range(len(ADVERBS))}
            grid = [(i, j) for i in range(len(ADVERBS)) for j in range(len(verbs))]
            train[attr] = [ADVERBS[i] + verbs[j] for i, j in grid if (i, j) not in held]
            heldout[attr] = [ADVERBS[i] + verbs[j] for i, j in grid if (i, j) in held]
        return cls(train, heldout)


@dataclass
class Vocab:
    tokens: list[str]
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def encode(self, words: list[str]) -> list[int]:
        return [self.index[w] for w in words]

    def decode(self, ids: list[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class Population:
    """Individuals: names (first, last) and attribute values (index into value_choices)."""

    names: list[tuple[str, str]]
    values: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class World:
    """Everything a run needs: vocabulary, templates, the choices and the populations."""

    vocab: Vocab
    templates: Templates
    choices: dict[str, list[tuple[str, ...]]]
    populations: dict[str, Population]
    max_len: int


def name_pool() -> tuple[list[str], list[str]]:
    firsts = [(a + b).capitalize() for a, b in itertools.product(_SYL_A, _SYL_B)]
    lasts = [(a + b + "son").capitalize() for a, b in itertools.product(_SYL_B, _SYL_A)]
    return firsts, lasts


def make_world(sizes: dict[str, int], seed: int) -> World:
    """Populations with the given sizes, e.g. {"train": 1000, "heldout": 200}; all names unique."""
    rng = np.random.default_rng(seed)
    firsts, lasts = name_pool()
    total = sum(sizes.values())
    if total > len(firsts) * len(lasts):
        raise ValueError(f"at most {len(firsts) * len(lasts)} individuals fit the name pool, asked for {total}")
    flat = rng.choice(len(firsts) * len(lasts), size=total, replace=False)
    names = [(firsts[k // len(lasts)], lasts[k % len(lasts)]) for k in flat]
    choices = value_choices()
    populations, start = {}, 0
    for pop_name, size in sizes.items():
        values = {a: rng.integers(0, len(choices[a]), size=size) for a in ATTRIBUTES}
        populations[pop_name] = Population(names[start : start + size], values)
        start += size
    templates = Templates.build(seed)
    words = {PAD, BOS, DOT, *firsts, *lasts}
    words.update(w for a in ATTRIBUTES for t in templates.train[a] + templates.heldout[a] for w in t)
    words.update(w for a in ATTRIBUTES for v in choices[a] for w in v)
    vocab = Vocab([PAD, BOS, *sorted(words - {PAD, BOS})])
    longest = max(len(t) for a in ATTRIBUTES for t in templates.train[a] + templates.heldout[a])
    max_len = 1 + len(ATTRIBUTES) * (2 + longest + 3 + 1)
    return World(vocab, templates, choices, populations, max_len)


def sentence(world: World, pop: Population, person: int, attr: str, template: list[str]) -> tuple[list[str], int]:
    """Words of one sentence and the number of value words (they sit just before the '.')."""
    value = world.choices[attr][pop.values[attr][person]]
    return [*pop.names[person], *template, *value, DOT], len(value)


def sampling_weights(n: int, alpha: float) -> np.ndarray:
    """P(i) proportional to i^-alpha for i = 1..n (alpha = 0 is uniform)."""
    w = np.arange(1, n + 1, dtype=np.float64) ** -alpha
    return w / w.sum()


def biography_batch(world: World, pop: Population, people: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """Token ids [batch, <= max_len] (right-padded) of fresh biographies: random order, train templates."""
    rows = []
    for person in people:
        words = [BOS]
        for attr in rng.permutation(ATTRIBUTES):
            options = world.templates.train[attr]
            words += sentence(world, pop, int(person), attr, options[rng.integers(len(options))])[0]
        rows.append(world.vocab.encode(words))
    # Pad only to the longest row of this batch: padding is pure wasted compute on a CPU.
    out = torch.full((len(rows), max(map(len, rows))), world.vocab.index[PAD], dtype=torch.long)
    for row, ids in enumerate(rows):
        out[row, : len(ids)] = torch.tensor(ids)
    return out


@dataclass
class ProbeSet:
    """Single held-out-template sentences; `target` marks the positions whose next token is a value."""

    ids: torch.Tensor
    target: torch.Tensor  # bool [n, len]: logits at this position predict a value token
    attr: list[str]
    person: np.ndarray


def probe_set(world: World, pop: Population, people: np.ndarray, rng: np.random.Generator) -> ProbeSet:
    """One sentence per (individual, attribute), each with a random held-out template."""
    rows, spans, attrs, owners = [], [], [], []
    for person in people:
        for attr in ATTRIBUTES:
            options = world.templates.heldout[attr]
            words, n_value = sentence(world, pop, int(person), attr, options[rng.integers(len(options))])
            words = [BOS, *words]
            rows.append(world.vocab.encode(words))
            first_value = len(words) - 1 - n_value
            spans.append((first_value - 1, first_value - 1 + n_value))
            attrs.append(attr)
            owners.append(int(person))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), world.vocab.index[PAD], dtype=torch.long)
    target = torch.zeros((len(rows), width), dtype=torch.bool)
    for k, (row, (lo, hi)) in enumerate(zip(rows, spans)):
        ids[k, : len(row)] = torch.tensor(row)
        target[k, lo:hi] = True
    return ProbeSet(ids, target, attrs, np.array(owners))
