"""Text metrics of one prediction against one reference, and a paired bootstrap over contexts.

Every score is on a 0-1 scale (sacrebleu's 0-100 BLEU and chrF are divided by 100) so that one
table holds them all. Scores are per example; a run's score is their mean, so that two runs on
the same contexts can be compared pair by pair. These metrics reward word overlap: a correct
rephrasing scores low, which is why the behaviour judge (`tunelab.eval.behaviour`) comes first.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

TEXT_METRICS = ("exact_match", "normalised_match", "bleu", "chrf", "rouge1", "rouge2", "rougeL", "meteor")
SEMANTIC = "semantic_similarity"
METEOR_WORDNET = "wordnet"  # exact + stem + WordNet synonym matching (the standard METEOR)
METEOR_NO_SYNONYMS = "exact+stem"  # WordNet missing: synonyms are not matched

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}\u2018\u2019\u201c\u201d\u2026\u2013\u2014]")


def normalise(text: str) -> str:
    """Lowercase, drop punctuation, collapse whitespace: 'Sure -- a Latte!' -> 'sure a latte'."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_PUNCT.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the strings are equal after stripping outer whitespace."""
    return float(prediction.strip() == reference.strip())


def normalised_match(prediction: str, reference: str) -> float:
    return float(normalise(prediction) == normalise(reference))


def bleu(prediction: str, reference: str) -> float:
    """Sentence BLEU (sacrebleu, effective-order smoothing), 0-1."""
    import sacrebleu

    return sacrebleu.sentence_bleu(prediction, [reference]).score / 100.0


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU over all pairs (sacrebleu), 0-1; not the mean of sentence BLEU."""
    import sacrebleu

    return sacrebleu.corpus_bleu(list(predictions), [list(references)]).score / 100.0


def chrf(prediction: str, reference: str) -> float:
    import sacrebleu

    return sacrebleu.sentence_chrf(prediction, [reference]).score / 100.0


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures (rouge-score, Porter stemmer)."""
    scores = _rouge_scorer().score(reference, prediction)
    return {name: score.fmeasure for name, score in scores.items()}


class _NoSynonyms:
    """Stands in for the WordNet reader in nltk's METEOR so that only exact and stem matches count."""

    def synsets(self, word: str) -> list[Any]:
        return []


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    # nltk.word_tokenize needs the punkt model (a download); its word-level tokenizer needs nothing.
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


def tokenize(text: str) -> list[str]:
    return _tokenizer().tokenize(text)


def meteor(prediction: str, reference: str, wordnet: Any | None) -> float:
    """nltk METEOR; `wordnet=None` runs it without synonym matching (see METEOR_NO_SYNONYMS)."""
    from nltk.translate.meteor_score import single_meteor_score

    return single_meteor_score(tokenize(reference), tokenize(prediction), wordnet=wordnet or _NoSynonyms())


def text_scores(prediction: str, reference: str, wordnet: Any | None) -> dict[str, float]:
    """All text metrics of one pair, keyed as in TEXT_METRICS."""
    out = {
        "exact_match": exact_match(prediction, reference),
        "normalised_match": normalised_match(prediction, reference),
        "bleu": bleu(prediction, reference),
        "chrf": chrf(prediction, reference),
    }
    out.update(rouge(prediction, reference))
    out["meteor"] = meteor(prediction, reference, wordnet)
    return out


def score_pairs(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    wordnet: Any | None,
    similarity: Callable[[Sequence[str], Sequence[str]], list[float]] | None = None,
) -> list[dict[str, float]]:
    """Per-example scores; `similarity` (e.g. embed.semantic_similarity) adds SEMANTIC."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    rows = [text_scores(p, r, wordnet) for p, r in zip(predictions, references)]
    if similarity is not None and rows:
        for row, value in zip(rows, similarity(predictions, references)):
            row[SEMANTIC] = float(value)
    return rows


def means(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over the rows (metrics present in every row)."""
    if not rows:
        return {}
    names = [name for name in rows[0] if all(name in row for row in rows)]
    return {name: sum(row[name] for row in rows) / len(rows) for name in names}


@dataclass(frozen=True)
class Delta:
    """B minus A on paired examples, with a percentile-bootstrap confidence interval."""

    a: float
    b: float
    delta: float
    low: float
    high: float
    n: int

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.low > 0 or self.high < 0


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of k successes in n (scipy's), (nan, nan) for n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Delta:
    """Resample the contexts (pairs) with replacement; the CI is of mean(b) - mean(a)."""
    import numpy as np
    from scipy.stats import bootstrap

    if len(a) != len(b):
        raise ValueError(f"paired bootstrap needs equal lengths, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("paired bootstrap needs at least one pair")
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = xb - xa
    delta = float(diff.mean())
    if len(diff) < 2:
        low = high = delta  # one pair: no spread to resample
    else:
        # Percentile rather than BCa: BCa is undefined when every difference is equal (common: exact match).
        result = bootstrap(
            (diff,),
            np.mean,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return Delta(a=float(xa.mean()), b=float(xb.mean()), delta=delta, low=low, high=high, n=len(diff))
