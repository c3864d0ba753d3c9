"""Hygiene: NFC, PII placeholders, exact and near duplicates — each optional and counted."""

from __future__ import annotations

import unicodedata

from tunelab.config import HygieneConfig
from tunelab.data.hygiene import clean, scrub_pii
from tunelab.data.logs import LogRecord


def rec(question: str, answer: str = "Dear student, yes. Anything else?", label: bool = True, **kw) -> LogRecord:
    return LogRecord(id=question[:10], question=question, answer=answer, label=label, **kw)


def test_pii_becomes_typed_placeholders_and_ordinary_text_stays():
    text = (
        "Write to ivan.petrov@mail.ru or call +7 (912) 345-67-89; my student ID is 20231234567. "
        "My page https://uni.example/~ivan/cv, the library https://uni.example/library, open 8:00-22:00 since 2024, fee 300."
    )
    assert scrub_pii(text) == (
        "Write to [EMAIL] or call [PHONE]; my student ID is [ID]. "
        "My page [URL], the library https://uni.example/library, open 8:00-22:00 since 2024, fee 300."
    )


def test_clean_counts_each_step():
    decomposed = unicodedata.normalize("NFD", "Где учёба?")
    records = [
        rec(decomposed),
        rec("My email is a@b.com, when is the exam?"),
        rec("When is the library open?"),
        rec("when is the   LIBRARY open?"),  # exact duplicate up to case and spaces
        rec("When is the library open today?"),  # near duplicate
        rec("When is the library open?", answer="no idea", label=False),  # other label: kept (a DPO pair)
    ]
    out, report = clean(records, HygieneConfig(near_duplicates=0.9))
    assert report.normalized == 1 and out[0].question == "Где учёба?"
    assert report.pii == {"EMAIL": 1} and report.records_with_pii == 1 and "[EMAIL]" in out[1].question
    assert report.exact_duplicates == 1 and report.near_duplicates == 1
    assert [r.question for r in out] == [
        "Где учёба?",
        "My email is [EMAIL], when is the exam?",
        "When is the library open?",
        "When is the library open?",
    ]
    assert [r.label for r in out][-2:] == [True, False]


def test_every_step_can_be_switched_off():
    records = [rec("mail a@b.com"), rec("mail a@b.com")]
    out, report = clean(records, HygieneConfig(normalize=False, pii=False, dedupe=False, near_duplicates=None))
    assert out == records
    assert report.to_dict() == {
        "normalized": 0,
        "pii_replaced": {},
        "records_with_pii": 0,
        "exact_duplicates": 0,
        "near_duplicates": 0,
    }


def test_contexts_and_tags_are_scrubbed_too():
    out, report = clean([rec("q", contexts=("Call 8 800 555 35 35 now",), tags={"role": "x@y.org"})], HygieneConfig())
    assert out[0].contexts == ("Call [PHONE] now",) and out[0].tags == {"role": "[EMAIL]"}
    assert report.pii == {"PHONE": 1, "EMAIL": 1}
