"""Writes this folder's example files from the built-in helpdesk generator (tunelab/data/synth/helpdesk.py):
prompt.yaml, logs.jsonl (the generator's columns) and logs.csv (the same rows under other column
names, contexts joined by "||", Yes/no labels: what logs_csv.yaml maps back).

    .venv/bin/python examples/helpdesk/regenerate.py
"""

import csv
import json
from pathlib import Path

from tunelab.data.synth.helpdesk import PROMPT_YAML, generate_logs

HERE = Path(__file__).parent
rows = generate_logs(40, seed=0)
(HERE / "prompt.yaml").write_text(PROMPT_YAML, encoding="utf-8")
with open(HERE / "logs.jsonl", "w", encoding="utf-8") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
with open(HERE / "logs.csv", "w", encoding="utf-8", newline="") as f:
    out = csv.writer(f)
    out.writerow(["query", "user_role", "campus", "level", "passages", "response", "rating", "why"])
    for r in rows:
        out.writerow(
            [
                r["question"],
                r["role"],
                r["campus"],
                r["level"],
                " || ".join(r["contexts"]),
                r["answer"],
                "Yes" if r["label"] == "good" else "no",
                r["comment"],
            ]
        )
print(f"{len(rows)} rows written to {HERE}")
