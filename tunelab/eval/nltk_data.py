"""WordNet for METEOR's synonym matching, built from Debian's `wordnet-base` files.

NLTK's downloader needs the internet, which we do not have; Debian ships the same WordNet 3.0
database (`apt-get install wordnet-base wordnet-sense-index`). NLTK 3.10 reads a corpus only as
plain files under a folder on `nltk.data.path`, and Debian leaves out `lexnames` (the list of
the 45 lexicographer files that NLTK reads first), so we copy the files into
$TUNELAB_HOME/nltk_data/corpora/wordnet/ once and write `lexnames` ourselves.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

from tunelab import rundir
from tunelab.models.registry import tunelab_home

log = logging.getLogger(__name__)

DEBIAN_WORDNET = Path("/usr/share/wordnet")
INSTALL_HINT = "apt-get install -y wordnet-base wordnet-sense-index"

# WordNet 3.0's lexicographer files: number, name, syntactic category (1 noun, 2 verb, 3 adj, 4 adv).
_LEXNAMES = (
    ["adj.all", "adj.pert", "adv.all"]
    + [
        f"noun.{n}"
        for n in (
            "Tops act animal artifact attribute body cognition communication event feeling food group "
            "location motive object person phenomenon plant possession process quantity relation shape "
            "state substance time"
        ).split()
    ]
    + [
        f"verb.{v}"
        for v in (
            "body change cognition communication competition consumption contact creation emotion "
            "motion perception possession social stative weather"
        ).split()
    ]
    + ["adj.ppl"]
)
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def lexnames_text() -> str:
    """The standard `lexnames` file: '00\\tadj.all\\t3' ... '44\\tadj.ppl\\t3'."""
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAMES))


def nltk_data_dir() -> Path:
    return tunelab_home() / "nltk_data"


def wordnet_dir() -> Path:
    return nltk_data_dir() / "corpora" / "wordnet"


def _required_files() -> tuple[str, ...]:
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    return WordNetCorpusReader._FILES


def install_wordnet(source: Path | None = None, target: Path | None = None) -> Path | None:
    """Copy Debian's WordNet into `target` (default under $TUNELAB_HOME); None if not installed.

    The copy is assembled in a temporary folder and renamed, so a half-copied corpus never exists.
    """
    source = source or DEBIAN_WORDNET
    target = target or wordnet_dir()
    needed = [name for name in _required_files() if name != "lexnames"]
    if (target / "lexnames").exists() and all((target / name).exists() for name in needed):
        return target
    missing = [name for name in needed if not (source / name).exists()]
    if missing:
        log.debug("WordNet source %s lacks %s", source, ", ".join(missing))
        return None
    with rundir.publish_dir(target) as staging:
        for name in needed:
            shutil.copyfile(source / name, staging / name)
        (staging / "lexnames").write_text(lexnames_text(), encoding="utf-8")
    return target


@lru_cache(maxsize=1)
def load_wordnet() -> Any | None:
    """An NLTK WordNet reader, or None (with a logged warning) when WordNet is not installed."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    root = install_wordnet()
    if root is None:
        log.warning(
            "WordNet not found in %s: METEOR will run without synonym matching (exact + stem only). Fix: %s",
            DEBIAN_WORDNET,
            INSTALL_HINT,
        )
        return None
    if str(nltk_data_dir()) not in nltk.data.path:
        nltk.data.path.append(str(nltk_data_dir()))
    with warnings.catch_warnings():
        # Only the English WordNet is used; the multilingual (OMW) data is not needed for METEOR.
        warnings.filterwarnings("ignore", message="The multilingual functions")
        return WordNetCorpusReader(str(root), None)
