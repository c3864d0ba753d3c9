"""More questions for recipe bake than the logs hold: a question file, and teacher paraphrases.

- `bake.questions_file`: questions without answers (CSV/JSONL/Parquet with the logs' column
  mapping; only the question column is required, tags and contexts are used when present). They
  get targets from the teacher (rule-filtered samples) or distillation, never a logged answer.
- `bake.paraphrases`: the teacher rewrites every training question N times (sampled). A rewrite
  keeps its original's tags, contexts and logged answer, so it adds training pairs of every
  target kind. Rewrites that come back empty, unchanged, too long, or as something other than
  a single question are dropped and counted.

Neither may leak the held-out questions: a candidate that falls into the same group of rewordings
as a held-out question (bake.question_groups) is dropped and counted.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Any

from tunelab import rundir
from tunelab.config import Config, LogsConfig
from tunelab.data.hygiene import clean
from tunelab.data.logs import LogRecord, read_logs
from tunelab.data.prepare import write_rejected
from tunelab.prompts.rules import detect_language, stems  # the rule checks' crude stems: one notion of "the same word"

log = logging.getLogger(__name__)
PARAPHRASES = "paraphrases.jsonl"

PARAPHRASE_INSTRUCTION = (
    "Reword this question without answering it. Reply with the reworded question only.\nQuestion: {question}"
)
# Worked examples before the real question: asked zero-shot, SmolLM2-135M answered 6 of 6 sampled
# questions instead of rewording them; with these, 5 of 6 English rewrites were usable.
PARAPHRASE_EXAMPLES = (
    ("Where is the cafeteria?", "Where can I find the cafeteria?"),
    ("Как оплатить общежитие?", "Каким способом можно оплатить общежитие?"),
    ("Who teaches the statistics course?", "Which teacher gives the statistics course?"),
)


def same_question_key(text: str) -> str:
    """The question as compared for "the same wording": case and spacing ignored."""
    return " ".join(text.casefold().split())


def read_question_file(path: str, logs: LogsConfig, rejected_dir: Path) -> tuple[list[LogRecord], dict[str, Any]]:
    """The questions of a file read with the logs' columns and hygiene; rejected rows counted and
    written to `rejected_dir`."""
    read = read_logs(path, logs, questions_only=True)
    for r in read.rejected[:5]:
        log.warning("rejected %s", r.message())
    rejected_file = write_rejected(read, rejected_dir)
    records, hygiene = clean(read.records, logs.hygiene)
    return records, {
        "file": str(path),
        "read": read.n_read,
        "kept": len(read.records),
        "rejected": len(read.rejected),
        "rejected_file": str(rejected_file) if rejected_file else None,
        "after_hygiene": len(records),
    }


def clean_paraphrase(original: str, text: str, max_words: int = 60) -> str | None:
    """The rewritten question from a teacher reply, or None when it is not a usable rewrite: empty,
    unchanged, too long, not a single question, in another language, or sharing no content word
    with the original (a question about something else)."""
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    first = re.sub(r"^(rewritten question|question|вопрос)\s*:\s*", "", first, flags=re.IGNORECASE).strip(" \"'«»")
    if not first or same_question_key(first) == same_question_key(original) or len(first.split()) > max_words:
        return None
    if not first.endswith("?") or first.count("?") > 1:
        return None
    if detect_language(first) != detect_language(original) or not set(stems(first)) & set(stems(original)):
        return None
    return first


def paraphrase(
    model: Any, tokenizer: Any, records: list[LogRecord], n: int, config: Config
) -> tuple[list[LogRecord], dict[str, int]]:
    """`n` sampled rewrites of every distinct question, each a copy of its record with the new wording.
    The model generates without any system prompt (the teacher with the adapter off, in bake)."""
    from tunelab.generation.replies import GenerationSettings, generate_replies, render_prompts
    from tunelab.messages import Message

    distinct = list({same_question_key(r.question): r.question for r in records}.values())
    asked = [q for q in distinct for _ in range(n)]
    shots = tuple(
        m
        for q, a in PARAPHRASE_EXAMPLES
        for m in (Message("user", PARAPHRASE_INSTRUCTION.format(question=q)), Message("assistant", a))
    )
    prompts = render_prompts(
        tokenizer, [shots + (Message("user", PARAPHRASE_INSTRUCTION.format(question=q)),) for q in asked]
    )
    settings = GenerationSettings(
        max_new_tokens=64, do_sample=True, temperature=config.bake.temperature, batch_size=16, seed=config.train.seed
    )
    replies = generate_replies(model, tokenizer, prompts, settings, description="paraphrases")
    rewrites: dict[str, dict[str, str]] = {}  # original (normalised) -> {rewrite normalised: rewrite}
    stats = {"asked": len(asked), "unusable": 0, "duplicate": 0}
    for q, reply in zip(asked, replies):
        text = clean_paraphrase(q, reply.text)
        if text is None:
            stats["unusable"] += 1
        elif same_question_key(text) in rewrites.setdefault(same_question_key(q), {}):
            stats["duplicate"] += 1
        else:
            rewrites[same_question_key(q)][same_question_key(text)] = text
    out = []
    for r in records:  # records sharing a question share its rewrites
        for i, text in enumerate(rewrites.get(same_question_key(r.question), {}).values()):
            out.append(dataclasses.replace(r, id=f"{r.id}~p{i}", question=text, source=f"{r.source} (paraphrase)"))
    stats["kept_wordings"] = sum(len(v) for v in rewrites.values())
    return out, stats


def question_groups(questions: list[str], containment: float = 0.3, jaccard: float | None = None) -> list[list[str]]:
    """Questions in groups of rewordings: two questions join when one holds at least `containment`
    of the other's content words (crude stems, as the rule checks use), transitively. This catches
    a question with a scrubbed e-mail appended and most same-language rewordings ("What is the
    tuition deadline?" / "By when must tuition be paid?"); translations stay separate groups.
    With `jaccard` (bake.rewording_jaccard) two questions join when their shared words are at least
    that share of all their words instead: in one narrow domain (coffee orders) nearly every
    request holds another's one word ("decaf"), so containment chains them all into one group."""
    words = [set(stems(q)) for q in questions]
    parent = list(range(len(questions)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_stem: dict[str, list[int]] = {}
    for i, st in enumerate(words):
        for w in st:
            by_stem.setdefault(w, []).append(i)
    for members in by_stem.values():  # only questions sharing a word can be rewordings of each other
        for a_pos, a in enumerate(members):
            for b in members[a_pos + 1 :]:
                shared = len(words[a] & words[b])
                if (
                    (shared >= jaccard * len(words[a] | words[b]))
                    if jaccard is not None
                    else (shared >= containment * min(len(words[a]), len(words[b])))
                ):
                    parent[root(a)] = root(b)
    groups: dict[int, list[str]] = {}
    for i, q in enumerate(questions):
        groups.setdefault(root(i), []).append(q)
    return sorted(groups.values())


def drop_heldout(
    candidates: list[LogRecord], held: list[LogRecord], jaccard: float | None = None
) -> tuple[list[LogRecord], int]:
    """Candidates that are not a held-out question nor in a held-out question's group of rewordings."""
    held_norm = {same_question_key(r.question) for r in held}
    if not held_norm:
        return candidates, 0
    groups = question_groups(sorted(held_norm | {same_question_key(r.question) for r in candidates}), jaccard=jaccard)
    tainted = {q for g in groups if held_norm & set(g) for q in g}
    kept = [r for r in candidates if same_question_key(r.question) not in tainted]
    return kept, len(candidates) - len(kept)


def extra_questions(
    config: Config,
    run_dir: Path,
    train: list[LogRecord],
    held: list[LogRecord],
    model: Any,
    tokenizer: Any,
    resuming: bool,
) -> tuple[list[LogRecord], list[LogRecord], dict[str, Any]]:
    """(paraphrased training records, question-file records, report) for recipe bake.

    Neither may hold a held-out question or a rewording of one (drop_heldout). Paraphrases are
    sampled, so they are saved to paraphrases.jsonl and read back on resume: sampling again would
    change the data under the checkpoint. `model` generates them (the teacher, adapter off)."""
    b, report = config.bake, {}
    paraphrased: list[LogRecord] = []
    if b.paraphrases:
        path = run_dir / PARAPHRASES
        if resuming and path.exists():
            by_id = {r.id: r for r in train}
            paraphrased = [
                dataclasses.replace(
                    by_id[row["of"]],
                    id=row["id"],
                    question=row["question"],
                    source=f"{by_id[row['of']].source} (paraphrase)",
                )
                for row in rundir.read_jsonl(path)
            ]
            stats = rundir.read_json(run_dir / rundir.DATA_REPORT)["paraphrases"]
        else:
            paraphrased, stats = paraphrase(model, tokenizer, train, b.paraphrases, config)
            paraphrased, stats["dropped_heldout"] = drop_heldout(paraphrased, held, b.rewording_jaccard)
            rundir.write_jsonl(
                path, [{"id": r.id, "of": r.id.rsplit("~p", 1)[0], "question": r.question} for r in paraphrased]
            )
        stats["records"] = len(paraphrased)
        report["paraphrases"] = stats
        log.info("paraphrases: %s", stats)
    from_file: list[LogRecord] = []
    if b.questions_file:
        from_file, file_report = read_question_file(b.questions_file, config.logs, run_dir / "rejected")
        # the file's ids are its own; prefixed so they never collide with the log's in the teacher's lookups
        from_file = [dataclasses.replace(r, id=f"questions_file:{r.id}") for r in from_file]
        from_file, file_report["dropped_heldout"] = drop_heldout(from_file, held, b.rewording_jaccard)
        file_report["used"] = len(from_file)
        report["questions_file"] = file_report
        log.info("questions file: %s", file_report)
    return paraphrased, from_file, report
