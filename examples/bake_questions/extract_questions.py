"""Real questions for `recipe bake` without answers: user turns of the Taskmaster-4 coffee dialogues.

Taskmaster-4 (Google Research, CC BY 4.0) holds 3,000 coffee-ordering dialogues written by people.
From each dialogue this takes the opening user request ("Hi, can I get a decaf mocha?") and every
later user turn that asks something (ends with "?"), skipping greetings without content ("Hello
there."). Questions are deduplicated (case and spacing ignored) and written as a question list
(`{"id", "question"}` per line) that bake reads with `data.train` when `bake.targets` has no
`logged`. Bake itself holds out whole groups of rewordings (tunelab.train.recipes.bake.split_by_question).

    python examples/bake_questions/extract_questions.py ../shared/data/taskmaster4 -o questions.jsonl --limit 400

(Taskmaster-4 is not in this repository; docs/taskmaster.md says where to get it.)
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

# under 4 words with none about an order or a question: "Hello there.", "Hi!", "Good morning"
_GREETING = re.compile(r"^\W*(hi|hello|hey|good (morning|afternoon|evening)|howdy)\b[\W\w]{0,20}$", re.IGNORECASE)


def user_questions(folder: str | Path) -> list[dict[str, str]]:
    """{"id", "question", "kind"} per distinct user request or question, in file order."""
    from tunelab.train.bake_inputs import same_question_key

    seen: set[str] = set()
    out = []
    for file in sorted(Path(folder, "dialogs").glob("*.json")):
        for dialog in json.loads(file.read_text(encoding="utf-8")):
            turns = [
                u["text"].strip()
                for u in dialog["utterances"]
                if u.get("speaker") == "user" and (u.get("text") or "").strip()
            ]
            for i, text in enumerate(turns):
                kind = "opening" if i == 0 else "question"
                if (kind == "question" and not text.endswith("?")) or _GREETING.match(text) or len(text.split()) < 3:
                    continue
                key = same_question_key(text)
                if key in seen:
                    continue
                seen.add(key)
                out.append({"id": f"{dialog['conversation_id']}:{i}", "question": text, "kind": kind})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="the Taskmaster-4 folder (with dialogs/)")
    parser.add_argument("-o", "--out", required=True, help="questions JSONL to write")
    parser.add_argument(
        "--limit",
        type=int,
        default=400,
        help="questions kept, drawn with --seed (all later questions and openings alike)",
    )
    parser.add_argument(
        "--questions-share",
        type=float,
        default=0.4,
        help="share of later user questions among those kept (the rest: openings)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = user_questions(args.folder)
    rng = random.Random(args.seed)
    later = [r for r in rows if r["kind"] == "question"]
    openings = [r for r in rows if r["kind"] == "opening"]
    n_later = min(len(later), round(args.limit * args.questions_share))
    kept = rng.sample(later, n_later) + rng.sample(openings, min(len(openings), args.limit - n_later))
    rng.shuffle(kept)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
    print(
        f"{len(rows)} distinct user requests/questions ({len(later)} later questions, {len(openings)} openings); wrote {len(kept)} to {args.out}"
    )


if __name__ == "__main__":
    main()
