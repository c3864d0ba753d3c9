"""Text metrics against the libraries that define them, WordNet setup, paired bootstrap."""

from __future__ import annotations

import logging
import math

import pytest

from tunelab.eval import metrics, nltk_data

REF = "Would you like your latte hot or iced?"
PRED = "Do you want the latte iced or hot?"
PAIRS = [
    (PRED, REF),
    ("One large cappuccino, is that right?", "So that's one large cappuccino, correct?"),
    ("Sorry, we only serve coffee here.", "I can only help with cafe orders, sorry."),
]


@pytest.fixture(scope="module")
def wordnet(tmp_path_factory):
    """WordNet installed into a fresh TUNELAB_HOME, as a user's first run would."""
    if not (nltk_data.DEBIAN_WORDNET / "data.noun").exists():
        pytest.skip(f"WordNet not installed ({nltk_data.INSTALL_HINT})")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNELAB_HOME", str(tmp_path_factory.mktemp("home")))
        nltk_data.load_wordnet.cache_clear()
        reader = nltk_data.load_wordnet()
        assert (nltk_data.wordnet_dir() / "lexnames").read_text() == nltk_data.lexnames_text()
    nltk_data.load_wordnet.cache_clear()
    assert reader is not None
    return reader


def test_bleu_and_chrf_are_sacrebleu_scaled_to_one():
    import sacrebleu

    for pred, ref in PAIRS:
        assert metrics.bleu(pred, ref) == pytest.approx(sacrebleu.sentence_bleu(pred, [ref]).score / 100)
        assert metrics.chrf(pred, ref) == pytest.approx(sacrebleu.sentence_chrf(pred, [ref]).score / 100)
    preds, refs = zip(*PAIRS)
    assert metrics.corpus_bleu(preds, refs) == pytest.approx(
        sacrebleu.corpus_bleu(list(preds), [list(refs)]).score / 100
    )
    assert 0 < metrics.chrf(PRED, REF) < 1


def test_rouge_is_rouge_score_fmeasure_with_stemming():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    for pred, ref in PAIRS:
        expected = {k: v.fmeasure for k, v in scorer.score(ref, pred).items()}
        assert metrics.rouge(pred, ref) == pytest.approx(expected)
    # Same bag of words in another order: full unigram overlap, not full bigram or LCS overlap.
    scores = metrics.rouge("iced or hot", "hot or iced")
    assert scores["rouge1"] == pytest.approx(1.0) and scores["rouge2"] < 1 and scores["rougeL"] < 1


def test_meteor_with_wordnet_matches_nltk_and_its_documented_value(wordnet):
    from nltk.translate.meteor_score import single_meteor_score

    hyp = "It is a guide to action which ensures that the military always obeys the commands of the party"
    ref = "It is a guide to action that ensures that the military will forever heed Party commands"
    # The value in nltk's own docstring for this pair.
    assert round(metrics.meteor(hyp, ref, wordnet), 4) == 0.6944
    for pred, r in PAIRS:
        expected = single_meteor_score(metrics.tokenize(r), metrics.tokenize(pred), wordnet=wordnet)
        assert metrics.meteor(pred, r, wordnet) == pytest.approx(expected)


def test_meteor_without_wordnet_matches_no_synonyms(wordnet):
    with_synonyms = metrics.meteor("I want a car", "I need an automobile", wordnet)
    without = metrics.meteor("I want a car", "I need an automobile", None)
    assert with_synonyms > without > 0  # "car"/"automobile" and "want"/"need" only match as synonyms
    # Stems still match without WordNet.
    assert metrics.meteor("ordering lattes", "ordered latte", None) == pytest.approx(
        metrics.meteor("ordering lattes", "ordered latte", wordnet)
    )


def test_lexnames_is_the_standard_45_line_list():
    lines = nltk_data.lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1"
    assert lines[29] == "29\tverb.body\t2" and lines[44] == "44\tadj.ppl\t3"
    assert [int(line.split("\t")[0]) for line in lines] == list(range(45))


def test_wordnet_reader_finds_synonyms(wordnet):
    assert "automobile" in wordnet.synsets("car")[0].lemma_names()


def test_missing_wordnet_is_reported_not_silent(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TUNELAB_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(nltk_data, "DEBIAN_WORDNET", tmp_path / "absent")
    nltk_data.load_wordnet.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            assert nltk_data.load_wordnet() is None
    finally:
        nltk_data.load_wordnet.cache_clear()
    assert "without synonym matching" in caplog.text and "wordnet-base" in caplog.text


def test_exact_and_normalised_match():
    assert metrics.exact_match(" One latte. ", "One latte.") == 1.0
    assert metrics.exact_match("one latte", "One latte.") == 0.0
    assert metrics.normalised_match("one   LATTE!", "One latte.") == 1.0
    assert metrics.normalised_match("one latte", "two lattes") == 0.0
    assert metrics.normalise("Sure \u2014 a Latte, please!") == "sure a latte please"


def test_identical_strings_score_maximum(wordnet):
    text = "So that's one large iced latte with oat milk, correct?"
    scores = metrics.text_scores(text, text, wordnet)
    assert set(scores) == set(metrics.TEXT_METRICS)
    for name, value in scores.items():
        # METEOR's fragmentation penalty keeps a perfect match just below 1.
        assert value == pytest.approx(1.0, abs=2e-3 if name == "meteor" else 1e-9), name


def test_empty_prediction_scores_zero_without_error(wordnet):
    scores = metrics.text_scores("", REF, wordnet)
    assert all(value == 0.0 for value in scores.values())


def test_semantic_similarity_is_minilm_cosine():
    from sentence_transformers import SentenceTransformer, util

    from tunelab.eval import embed

    preds = [PRED, "The weather is nice today.", REF]
    refs = [REF, REF, REF]
    got = embed.semantic_similarity(preds, refs)
    model = SentenceTransformer(str(embed.model_path()), device="cpu", local_files_only=True)
    expected = [float(util.cos_sim(model.encode(p), model.encode(r))[0, 0]) for p, r in zip(preds, refs)]
    assert got == pytest.approx(expected, abs=1e-5)
    assert got[2] == pytest.approx(1.0, abs=1e-5)
    assert got[0] > got[1]  # a paraphrase is closer than an unrelated sentence


def test_score_pairs_adds_similarity_and_means():
    rows = metrics.score_pairs(["a b", "c"], ["a b", "d"], wordnet=None, similarity=lambda p, r: [0.5, 0.25])
    assert [r["exact_match"] for r in rows] == [1.0, 0.0]
    means = metrics.means(rows)
    assert means["exact_match"] == 0.5 and means[metrics.SEMANTIC] == pytest.approx(0.375)
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        metrics.score_pairs(["a", "b"], ["a"], wordnet=None)


def test_paired_bootstrap_constant_shift_has_zero_width_interval():
    a = [0.1, 0.5, 0.3, 0.9, 0.2]
    d = metrics.paired_bootstrap(a, [x + 0.1 for x in a], seed=1)
    assert d.delta == pytest.approx(0.1) and d.low == pytest.approx(0.1) and d.high == pytest.approx(0.1)
    assert d.significant and d.n == 5


def test_paired_bootstrap_noisy_interval_contains_delta_and_is_seeded():
    import random

    rng = random.Random(0)
    a = [rng.random() for _ in range(40)]
    b = [x + rng.gauss(0, 0.3) for x in a]
    d1 = metrics.paired_bootstrap(a, b, seed=3)
    d2 = metrics.paired_bootstrap(a, b, seed=3)
    assert d1 == d2
    assert d1.low < d1.delta < d1.high
    assert d1.delta == pytest.approx(sum(b) / 40 - sum(a) / 40)
    # Pairing matters: the interval of paired differences is narrower than the spread of B itself.
    assert (d1.high - d1.low) < 4 * 0.3 / math.sqrt(40) * 1.5


def test_paired_bootstrap_rejects_unpaired_input():
    with pytest.raises(ValueError, match="equal lengths"):
        metrics.paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least one"):
        metrics.paired_bootstrap([], [])
