"""Plain sanity of a reply used as a training target, whatever the prompt's rules say.

The rules check what the prompt asks; these check what any reply must be to be worth learning:
a small teacher's replies (and their repairs) can pass every rule and still be a scrap, e.g.
`*singing* How about "How about this business you're referring to?` or a reply that repeats
`Question: ... ### Assistant:` from its prompt. `sanity_problem` names the first problem found:

  empty reply            nothing with a letter in it;
  role marker            "### Assistant", "Question:", "User:", "Вопрос:", <|im_start|> and the
                         like, at the start of a line or of a sentence (template debris);
  unbalanced quotes      an odd number of straight double quotes, or unmatched “” / «»;
  unbalanced brackets    ( [ { not closed in order;
  echo of the question   the question's words (three or more) repeated in order in the reply;
  copies an example      eight or more words in a row of one of the prompt file's example replies:
                         a base teacher shown examples parrots them, and the parrot passes the rules
                         the example was written to pass (`examples` given);
  restates the question  the reply opens with a question made mostly of the user's question's
                         words ("Сколько стоит тариф на 100 мегабит?" to "...на 500 мегабит?"):
                         a base model continuing the user's turn, not answering it;
  starts mid-word        the first letter is lower case, or the reply opens with , ; : ) ] }
  no terminal punctuation the reply does not end with . ! ? or … (a reply cut by the token limit).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_ROLE_WORDS = (
    "question|answer|user|assistant|system|human|bot|customer|agent|q|a|"
    "вопрос|ответ|пользователь|ассистент|клиент|оператор"
)
_ROLE_MARKER = re.compile(
    rf"#{{2,}}|<\|[a-z_]+\|>|<(?:start|end)_of_turn>|(?:^|(?<=[.!?…:]\s)|\n)\s*\**(?:{_ROLE_WORDS})\**\s*:",
    re.IGNORECASE,
)
_OPEN_FRAGMENT = re.compile(r"^[,;:)\]}»”.]")
_TRAILING_CLOSERS = "\"'»”)]*_ "
_BRACKETS = {")": "(", "]": "[", "}": "{"}


def without_template_debris(text: str) -> str:
    """`text` without the role labels a base model writes around its reply: a label it opens with
    ("Answer: ...") is dropped, and everything from the next one on ("... Question: ...", "### User")
    is cut, as a stop sequence would have ended the generation there.

    >>> without_template_debris("Ответ: Перезагрузите роутер. Вопрос: а если не поможет?")
    'Перезагрузите роутер.'
    """
    for _ in range(8):  # a few stacked labels ("### Assistant: Answer:") at most
        m = _ROLE_MARKER.search(text)
        if m is None:
            break
        if text[: m.start()].strip(" *\n\t"):
            return text[: m.start()].rstrip()
        text = text[m.end() :].lstrip()
    return text.strip()


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _echoes(reply: str, question: str) -> bool:
    q = _words(question)
    if len(q) < 3:  # "Hi there?" repeated is no echo worth a rule
        return False
    return f" {' '.join(q)} " in f" {' '.join(_words(reply))} "


_FIRST_SENTENCE = re.compile(r"^.*?[.!?…](?=\s|$)", re.DOTALL)


def _restates(reply: str, question: str) -> bool:
    from tunelab.prompts.rules import stems  # rules imports this module to check a prompt file's examples

    first = _FIRST_SENTENCE.match(reply)
    if first is None or not first.group().endswith("?"):
        return False
    said, asked = set(stems(first.group())), set(stems(question))
    return len(said) >= 2 and len(said & asked) * 2 >= len(said)


def _brackets_balanced(text: str) -> bool:
    stack: list[str] = []
    for ch in text:
        if ch in "([{":
            stack.append(ch)
        elif ch in _BRACKETS:
            if not stack or stack.pop() != _BRACKETS[ch]:
                return False
    return not stack


# Words in a row shared with an example reply that make a copy, not a reply in the same style.
COPIED_WORDS = 8


def _copies(reply: str, examples: Sequence[str]) -> bool:
    words = _words(reply)
    runs = {tuple(words[i : i + COPIED_WORDS]) for i in range(len(words) - COPIED_WORDS + 1)}
    for example in examples:
        e = _words(example)
        if any(tuple(e[i : i + COPIED_WORDS]) in runs for i in range(len(e) - COPIED_WORDS + 1)):
            return True
    return False


def sanity_problem(reply: str, question: str = "", examples: Sequence[str] = ()) -> str | None:
    """The first reason `reply` is no usable target, or None.

    >>> sanity_problem("We open at nine. Anything else?", "When do you open?") is None
    True
    >>> sanity_problem("ing the latte now.")
    'starts mid-word'
    """
    text = reply.strip()
    if not _WORD.search(text):
        return "empty reply"
    if _ROLE_MARKER.search(text):
        return "role marker"
    if text.count('"') % 2 or text.count("“") != text.count("”") or text.count("«") != text.count("»"):
        return "unbalanced quotes"
    if not _brackets_balanced(text):
        return "unbalanced brackets"
    if question and _echoes(text, question):
        return "echo of the question"
    if question and _restates(text, question):
        return "restates the question"
    if examples and _copies(text, examples):
        return "copies an example"
    first = text.lstrip("\"'«“*_ ")
    if _OPEN_FRAGMENT.match(first) or (first[:1].isalpha() and first[:1].islower()):
        return "starts mid-word"
    if not text.rstrip(_TRAILING_CLOSERS).endswith((".", "!", "?", "…")):
        return "no terminal punctuation"
    return None
