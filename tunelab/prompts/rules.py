"""System prompt files: the prompt text plus rules, some of which a machine can check.

A prompt file is YAML:

    name: helpdesk
    prompt: |
      You are the helpdesk assistant of ...
    rules:
      - kind: max_sentences
        n: 3
      - {kind: must_not_contain, phrase: "as an AI"}
    examples:                      # optional, at most five
      - question: Where do I reset my password?
        reply: On the sign-in page, under "Forgot password". Can I help with anything else?

Every rule has a `kind` (one of RULE_KINDS), an optional `id` (default: the kind; ids must be
unique), an optional `description` and an optional `repair: false` (bake's rule-aware repair,
tunelab/prompts/repair.py, then never edits a reply to pass it); the other keys are the kind's
parameters. An unknown kind or parameter is an error naming the file and the rule.

`examples` are exchanges as the prompt wants them: each reply is checked on load against every
rule (with the example's question) and against plain sanity (tunelab/prompts/sanity.py); one that
fails is an error naming the file, the line, the example and the rule. Bake's teacher gets them as
few-shot turns; a model given the prompt sees them inside it (`system_prompt`).

The checks are deliberately simple heuristics and say so:
- language: script-based (share of Cyrillic vs Latin letters), enough for en/ru, nothing finer;
- sentences: split on . ! ? and …; words: runs of letters/digits;
- grounded: content words (>= 4 letters, compared by their first 5 letters as a crude stem that
  works for English and Russian) of the reply, minus `ignore` phrases, must mostly occur in the
  contexts or the question; when the contexts lack the answer the reply must say it does not
  know. Whether they lack it comes from the item's `answerable` flag when the data has one, else
  from the share of the question's content words found in the contexts;
- declines_off_topic: a question is off-topic when the item says so, else when it contains none
  of `topic_keywords`; an off-topic question must be declined, an on-topic one must not be.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from tunelab.prompts.sanity import sanity_problem
from tunelab.textio import InputFileError, load_yaml, read_text


class PromptFileError(ValueError):
    """A bad prompt file; the message names the file and the rule."""


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    description: str = ""
    repairable: bool = True  # `repair: false` in the file: bake never edits a reply to pass this rule


@dataclass(frozen=True)
class Example:
    """One exchange of the prompt file's `examples:`: a question and the reply the prompt wants."""

    question: str
    reply: str


@dataclass(frozen=True)
class PromptSpec:
    name: str
    prompt: str
    rules: tuple[Rule, ...] = ()
    path: str = ""
    examples: tuple[Example, ...] = ()


MAX_EXAMPLES = 5  # a few exchanges show the form; more would make the prompt the training set
# How examples read inside the prompt, in the prompt's own language.
_EXAMPLE_HEADINGS = {
    "en": ("Examples of good replies:", "The user writes", "You reply"),
    "ru": ("Примеры хороших ответов:", "Пользователь пишет", "Вы отвечаете"),
}


def system_prompt(spec: PromptSpec) -> str:
    """The system prompt a model is given: the prompt text, then its examples (if any) as text."""
    if not spec.examples:
        return spec.prompt
    title, asks, says = _EXAMPLE_HEADINGS.get(detect_language(spec.prompt), _EXAMPLE_HEADINGS["en"])
    shots = "\n\n".join(f"{asks}: {e.question}\n{says}: {e.reply}" for e in spec.examples)
    return f"{spec.prompt}\n\n{title}\n\n{shots}"


@dataclass(frozen=True)
class CheckItem:
    """What a rule may look at besides the reply: the question, user tags, retrieved contexts and
    optional flags from the data (`answerable`, `off_topic`)."""

    question: str
    tags: Mapping[str, str] = field(default_factory=dict)
    contexts: Sequence[str] = ()
    answerable: bool | None = None
    off_topic: bool | None = None


@dataclass(frozen=True)
class RuleResult:
    rule: str
    passed: bool
    applicable: bool = True
    detail: str = ""


# kind -> (required params, optional params with defaults)
RULE_KINDS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "language": ((), {"expected": "auto"}),
    "max_sentences": (("n",), {}),
    "max_words": (("n",), {}),
    "must_contain": (("phrase",), {"case_sensitive": False}),
    "must_not_contain": (("phrase",), {"case_sensitive": False}),
    # closing_questions: what bake's repair may append to a reply that lacks the closing question
    "ends_with_question": ((), {"closing_questions": []}),
    "format": (("format",), {}),
    "role_address": (("forms",), {"tag": "role", "position": "start", "window": 40}),
    "grounded": ((), {"min_overlap": 0.6, "answerable_overlap": 0.5, "dont_know": [], "ignore": []}),
    "declines_off_topic": (("topic_keywords", "decline_phrases"), {}),
}
FORMATS = ("json", "bullets", "no_list")
_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"[.!?…]+(?=\s|$)")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# e-mail addresses, URLs and phone-like digit runs (or their placeholders) are not content words
_NOT_WORDS = re.compile(r"\S+@\S+|https?://\S+|\+?\d[\d ()-]{6,}\d|\[[A-Z_]+\]")
_STOP = set(
    "that this with from have your what when where which there their they them will would could should "
    "about into also only been were does more than then here just very можно если этот этого этом который "
    "которые когда какой какие также тоже только чтобы ваши ваша ваше ваш ваших вашего есть было будет "
    "могу может можете нужно нужна нужны какого каких числа куда делать must made much need email phone почта телефон".split()
)


def stems(text: str) -> list[str]:
    """Crude stems of the content words (first five letters; short words, numbers and stop words
    dropped): one notion of "the same word" for the rule checks and for finding rewordings."""
    text = _NOT_WORDS.sub(" ", text)
    return [
        w[:5] for w in (m.lower() for m in _WORD.findall(text)) if len(w) >= 4 and not w.isdigit() and w not in _STOP
    ]


def detect_language(text: str) -> str:
    """'ru' when Cyrillic letters outnumber Latin ones, 'en' when Latin do, '' with no letters."""
    cyr = sum(1 for ch in text if "\u0400" <= ch <= "\u04ff")
    lat = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    if not cyr and not lat:
        return ""
    return "ru" if cyr > lat else "en"


def sentences(text: str) -> list[str]:
    lines = [_LIST_LINE.sub("", ln) for ln in text.strip().splitlines()]
    parts = []
    for line in lines:
        parts.extend(p.strip() for p in _SENTENCE_END.split(line))
    return [p for p in parts if _WORD.search(p)]


def _contains(text: str, phrase: str, case_sensitive: bool = False) -> bool:
    return phrase in text if case_sensitive else phrase.casefold() in text.casefold()


def _any_phrase(text: str, phrases: Sequence[str]) -> bool:
    return any(_contains(text, p) for p in phrases)


def _check_language(rule: Rule, reply: str, item: CheckItem) -> RuleResult:
    expected = rule.params["expected"]
    if expected == "auto":
        expected = detect_language(item.question)
        if not expected:
            return RuleResult(rule.id, True, False, "question has no letters")
    got = detect_language(reply)
    return RuleResult(rule.id, got == expected, True, f"expected {expected}, reply is {got or 'empty'}")


def _check_format(rule: Rule, reply: str, item: CheckItem) -> RuleResult:
    fmt = rule.params["format"]
    list_lines = sum(1 for ln in reply.splitlines() if _LIST_LINE.match(ln))
    if fmt == "json":
        try:
            json.loads(reply)
            return RuleResult(rule.id, True)
        except json.JSONDecodeError as exc:
            return RuleResult(rule.id, False, True, f"not JSON: {exc.msg}")
    if fmt == "bullets":
        return RuleResult(rule.id, list_lines >= 2, True, f"{list_lines} list lines")
    return RuleResult(rule.id, list_lines == 0, True, f"{list_lines} list lines")


def _check_role_address(rule: Rule, reply: str, item: CheckItem) -> RuleResult:
    role = item.tags.get(rule.params["tag"])
    forms: dict[str, list[str]] = rule.params["forms"]
    if role is None or role not in forms:
        return RuleResult(rule.id, True, False, f"no form of address for {rule.params['tag']}={role!r}")
    text = reply.strip()
    if rule.params["position"] == "start":
        text = text[: rule.params["window"]]
    ok = _any_phrase(text, forms[role])
    others = [
        f for r, fs in forms.items() if r != role for f in fs if not any(_contains(f, own) for own in forms[role])
    ]
    wrong = _any_phrase(reply, others)
    return RuleResult(
        rule.id,
        ok and not wrong,
        True,
        f"role {role}: {'addressed' if ok else 'not addressed'}{', wrong form used' if wrong else ''}",
    )


def is_answerable(item: CheckItem, threshold: float) -> bool:
    if item.answerable is not None:
        return item.answerable
    q = set(stems(item.question))
    # One passage must hold most of the question's words; several passages sharing a word each is no answer.
    return bool(q) and max(len(q & set(stems(c))) / len(q) for c in item.contexts) >= threshold


def _check_grounded(rule: Rule, reply: str, item: CheckItem) -> RuleResult:
    p = rule.params
    if not item.contexts or item.off_topic:
        return RuleResult(rule.id, True, False, "no contexts" if not item.contexts else "off-topic question")
    says_dont_know = _any_phrase(reply, p["dont_know"])
    if not is_answerable(item, p["answerable_overlap"]):
        return RuleResult(
            rule.id,
            says_dont_know,
            True,
            "contexts lack the answer: " + ("said so" if says_dont_know else "did not say so"),
        )
    if says_dont_know:
        return RuleResult(rule.id, False, True, "said it does not know although the contexts hold the answer")
    text = reply
    for phrase in p["ignore"]:
        text = re.sub(re.escape(phrase), " ", text, flags=re.IGNORECASE)
    words = stems(text)
    if not words:
        return RuleResult(rule.id, False, True, "no content words")
    known = set(stems(" ".join(item.contexts))) | set(stems(item.question))
    share = sum(1 for w in words if w in known) / len(words)
    return RuleResult(rule.id, share >= p["min_overlap"], True, f"{share:.2f} of content words from the contexts")


def is_off_topic(rule: Rule, item: CheckItem) -> bool:
    if item.off_topic is not None:
        return item.off_topic
    keywords = {k[:5].lower() for k in rule.params["topic_keywords"]}
    return not (set(stems(item.question)) & keywords)


def _check_off_topic(rule: Rule, reply: str, item: CheckItem) -> RuleResult:
    off = is_off_topic(rule, item)
    declined = _any_phrase(reply, rule.params["decline_phrases"])
    if off:
        return RuleResult(rule.id, declined, True, "off-topic: " + ("declined" if declined else "not declined"))
    return RuleResult(rule.id, not declined, True, "on-topic: " + ("wrongly declined" if declined else "answered"))


def _simple(kind: str) -> Callable[[Rule, str, CheckItem], RuleResult]:
    def check(rule: Rule, reply: str, item: CheckItem) -> RuleResult:
        p = rule.params
        if kind == "max_sentences":
            n = len(sentences(reply))
            return RuleResult(rule.id, 0 < n <= p["n"], True, f"{n} sentences")
        if kind == "max_words":
            n = len(_WORD.findall(reply))
            return RuleResult(rule.id, 0 < n <= p["n"], True, f"{n} words")
        if kind == "must_contain":
            return RuleResult(rule.id, _contains(reply, p["phrase"], p["case_sensitive"]))
        if kind == "must_not_contain":
            return RuleResult(rule.id, not _contains(reply, p["phrase"], p["case_sensitive"]))
        return RuleResult(rule.id, reply.rstrip().endswith("?"))  # ends_with_question

    return check


CHECKS: dict[str, Callable[[Rule, str, CheckItem], RuleResult]] = {
    "language": _check_language,
    "format": _check_format,
    "role_address": _check_role_address,
    "grounded": _check_grounded,
    "declines_off_topic": _check_off_topic,
    **{k: _simple(k) for k in ("max_sentences", "max_words", "must_contain", "must_not_contain", "ends_with_question")},
}


def check(rule: Rule, reply: str, item: CheckItem) -> RuleResult:
    return CHECKS[rule.kind](rule, reply, item)


def check_all(spec: PromptSpec, reply: str, item: CheckItem) -> list[RuleResult]:
    """Every rule's result. An off-topic rule also tells the grounded rule to skip off-topic questions."""
    topic_rule = next((r for r in spec.rules if r.kind == "declines_off_topic"), None)
    if item.off_topic is None and topic_rule is not None:
        item = replace(item, off_topic=is_off_topic(topic_rule, item))
    return [check(rule, reply, item) for rule in spec.rules]


def passes_all(results: Sequence[RuleResult]) -> bool:
    return all(r.passed for r in results if r.applicable)


def _parse_rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise PromptFileError(f"{where}: a rule must be a mapping with a 'kind', got {type(raw).__name__}")
    body = dict(raw)
    kind = body.pop("kind", None)
    if kind not in RULE_KINDS:
        raise PromptFileError(f"{where}: unknown rule kind {kind!r}; known kinds: {', '.join(RULE_KINDS)}")
    rule_id = str(body.pop("id", kind))
    description = str(body.pop("description", ""))
    repairable = body.pop("repair", True)
    if not isinstance(repairable, bool):
        raise PromptFileError(f"{where} ({kind}): 'repair' must be true or false, got {repairable!r}")
    required, optional = RULE_KINDS[kind]
    unknown = set(body) - set(required) - set(optional)
    if unknown:
        raise PromptFileError(
            f"{where} ({kind}): unknown parameter(s) {sorted(unknown)}; allowed: {sorted({*required, *optional})}"
        )
    missing = [k for k in required if k not in body]
    if missing:
        raise PromptFileError(f"{where} ({kind}): missing parameter(s) {missing}")
    params = {**optional, **body}
    _validate_params(kind, params, where)
    return Rule(id=rule_id, kind=kind, params=params, description=description, repairable=repairable)


def _validate_params(kind: str, p: dict[str, Any], where: str) -> None:
    if kind in ("max_sentences", "max_words") and not (isinstance(p["n"], int) and p["n"] >= 1):
        raise PromptFileError(f"{where} ({kind}): 'n' must be a positive integer, got {p['n']!r}")
    if kind == "format" and p["format"] not in FORMATS:
        raise PromptFileError(f"{where} (format): 'format' must be one of {FORMATS}, got {p['format']!r}")
    if kind == "language" and p["expected"] not in ("auto", "en", "ru"):
        raise PromptFileError(f"{where} (language): 'expected' must be auto, en or ru, got {p['expected']!r}")
    if kind == "role_address" and not (
        isinstance(p["forms"], dict) and all(isinstance(v, list) and v for v in p["forms"].values())
    ):
        raise PromptFileError(f"{where} (role_address): 'forms' must map each role to a non-empty list of phrases")
    if kind == "role_address" and p["position"] not in ("start", "anywhere"):
        raise PromptFileError(f"{where} (role_address): 'position' must be start or anywhere, got {p['position']!r}")
    if kind == "ends_with_question" and not all(str(q).rstrip().endswith("?") for q in p["closing_questions"]):
        raise PromptFileError(f"{where} (ends_with_question): every entry of 'closing_questions' must end with '?'")
    for key in ("dont_know", "ignore", "topic_keywords", "decline_phrases", "closing_questions"):
        if key in p and not (isinstance(p[key], list) and all(isinstance(x, str) for x in p[key])):
            raise PromptFileError(f"{where} ({kind}): {key!r} must be a list of strings")
    if kind == "grounded" and not p["dont_know"]:
        raise PromptFileError(
            f"{where} (grounded): 'dont_know' needs at least one phrase the reply uses when the contexts lack the answer"
        )


def _parse_examples(raw: Any, rules: Sequence[Rule], path: str, lines: Sequence[int]) -> tuple[Example, ...]:
    """The file's examples, each reply checked against every rule and plain sanity."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PromptFileError(f"{path}: 'examples' must be a list of {{question, reply}} mappings")
    if len(raw) > MAX_EXAMPLES:
        raise PromptFileError(f"{path}: 'examples' holds {len(raw)} exchanges; at most {MAX_EXAMPLES}")
    spec = PromptSpec(name="", prompt="-", rules=tuple(rules))
    out = []
    for i, ex in enumerate(raw):
        where = f"{path}" + (f":{lines[i]}" if i < len(lines) else "") + f": examples[{i}]"
        if not isinstance(ex, dict) or set(ex) != {"question", "reply"}:
            raise PromptFileError(f"{where}: an example is a mapping with exactly 'question' and 'reply'")
        if not all(isinstance(ex[k], str) and ex[k].strip() for k in ("question", "reply")):
            raise PromptFileError(f"{where}: 'question' and 'reply' must be non-empty strings")
        question, reply = ex["question"].strip(), ex["reply"].strip()
        for result in check_all(spec, reply, CheckItem(question=question)):
            if result.applicable and not result.passed:
                detail = f" ({result.detail})" if result.detail else ""
                raise PromptFileError(f"{where}.reply breaks rule {result.rule!r}{detail}: {reply[:80]!r}")
        problem = sanity_problem(reply, question)
        if problem:
            raise PromptFileError(f"{where}.reply fails the sanity check ({problem}): {reply[:80]!r}")
        out.append(Example(question, reply))
    return tuple(out)


def _example_lines(text: str) -> list[int]:
    """1-based line of each item of the file's `examples:` list, for error messages (none if unparsable)."""
    try:
        root = yaml.compose(text)
    except (yaml.YAMLError, RecursionError):
        return []
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if getattr(key, "value", None) == "examples" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def parse_prompt(data: Any, path: str = "<prompt>", example_lines: Sequence[int] = ()) -> PromptSpec:
    if not isinstance(data, dict) or not isinstance(data.get("prompt"), str) or not data["prompt"].strip():
        raise PromptFileError(f"{path}: a prompt file is a mapping with a non-empty 'prompt' string")
    unknown = set(data) - {"name", "prompt", "rules", "examples"}
    if unknown:
        raise PromptFileError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: name, prompt, rules, examples")
    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list):
        raise PromptFileError(f"{path}: 'rules' must be a list")
    rules = [_parse_rule(r, f"{path}: rules[{i}]") for i, r in enumerate(raw_rules)]
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.id in seen:
            raise PromptFileError(f"{path}: rules[{i}]: duplicate rule id {rule.id!r}; give one of them an 'id'")
        seen.add(rule.id)
    return PromptSpec(
        name=str(data.get("name", Path(path).stem)),
        prompt=data["prompt"].strip(),
        rules=tuple(rules),
        path=path,
        examples=_parse_examples(data.get("examples"), rules, path, example_lines),
    )


def load_prompt(path: str | Path) -> PromptSpec:
    try:
        text = read_text(path)
    except InputFileError as exc:
        raise PromptFileError(str(exc)) from None
    data = load_yaml(text, str(path), PromptFileError)
    lines = _example_lines(text) if isinstance(data, dict) and data.get("examples") else []
    return parse_prompt(data, str(path), lines)


def dump_prompt(spec: PromptSpec) -> str:
    rules = [
        {
            "kind": r.kind,
            **({"id": r.id} if r.id != r.kind else {}),
            **({"description": r.description} if r.description else {}),
            **({} if r.repairable else {"repair": False}),
            **r.params,
        }
        for r in spec.rules
    ]
    examples = [{"question": e.question, "reply": e.reply} for e in spec.examples]
    return yaml.safe_dump(
        {"name": spec.name, "prompt": spec.prompt, "rules": rules, **({"examples": examples} if examples else {})},
        sort_keys=False,
        allow_unicode=True,
    )
