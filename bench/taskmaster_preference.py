"""KTO and DPO on the Taskmaster-4 judgement set: do they teach the model to prefer the replies
people judged good over the ones they judged bad, in dialogues it never saw?

    .venv/bin/python bench/taskmaster_preference.py [--data ../shared/data/taskmaster4]
        [--recipes kto,dpo] [--steps 40] [--batch 2] [--lr 5e-5] [--eval-pairs 120] [--out runs/taskmaster_preference]

1. Converts reward/*.json into judgement rows {context, completion, label} (as
   `tunelab data import taskmaster --reward-out` does) and splits them, seeded, by the customer's
   opening request (tunelab.data.taskmaster.split_by_opening). Every reward row has its own
   conversation id, yet many rows continue the same dialogue (the good and the bad reply to one
   context; later steps of it), so splitting by id would leak held-out contexts into training;
   the opening request groups them.
2. Trains each recipe with `tunelab.train.run` (the same path as `tunelab train`) on the training
   rows, LoRA on smollm2-135m (KTO with the desirable weight balancing good against bad rows).
3. On held-out (good, bad) pairs that share a context, scores both replies by the summed log
   probability of their tokens given the context, for the base model and each tuned model, and
   reports how often the good reply scores higher (pairwise accuracy; ties count half). For a
   tuned model it also reports the implicit reward, log p_tuned - log p_base, which is what DPO
   and KTO optimise. A 95% bootstrap interval over pairs goes with each rate.

Prints the table and writes it, with sizes and CPU/wall times, to OUT/preference.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def cpu_seconds() -> float:
    """CPU time of this process and its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def encode(tokenizer: Any, info: Any, context: list[dict], reply: dict, max_length: int) -> tuple[list[int], int]:
    """(ids, number of reply tokens at the end): the reply as SFT renders it, the context cut
    from the left when the whole does not fit."""
    from tunelab.data.formats import parse_openai
    from tunelab.data.tokenize import to_template_messages

    prompt = to_template_messages(parse_openai({"messages": context}), info)
    full = to_template_messages(parse_openai({"messages": context + [reply]}), info)
    p = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
    f = tokenizer.apply_chat_template(full, tokenize=True, return_dict=False)
    assert f[: len(p)] == p, "chat template is not prefix-stable"
    n_reply = len(f) - len(p)
    return f[-max_length:], min(n_reply, max_length - 1)


def reply_logprobs(model: Any, batch: list[tuple[list[int], int]], pad_id: int) -> list[float]:
    """Summed log probability of each sequence's last n tokens."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (seq, _) in enumerate(batch):  # right padding: positions stay 0..n-1
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    with torch.inference_mode():
        logp = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float().log_softmax(-1)
    out = []
    for i, (seq, n) in enumerate(batch):
        targets = torch.tensor(seq[len(seq) - n :])
        rows = logp[i, len(seq) - n - 1 : len(seq) - 1]
        out.append(float(rows.gather(1, targets[:, None]).sum()))
    return out


def score_pairs(
    model: Any, tokenizer: Any, pairs: list[tuple[dict, dict]], max_length: int, batch: int = 8
) -> list[tuple[float, float]]:
    from tqdm.auto import tqdm

    from tunelab.data.tokenize import template_info

    info = template_info(tokenizer)
    seqs = [encode(tokenizer, info, g["context"], r["completion"], max_length) for g, b in pairs for r in (g, b)]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]))  # similar lengths together: less padding
    scores = [0.0] * len(seqs)
    for start in tqdm(range(0, len(order), batch), desc="scoring replies", unit="batch"):
        chunk = order[start : start + batch]
        for i, value in zip(chunk, reply_logprobs(model, [seqs[i] for i in chunk], tokenizer.pad_token_id)):
            scores[i] = value
    return [(scores[2 * k], scores[2 * k + 1]) for k in range(len(pairs))]


def accuracy(margins: list[float], seed: int = 0, rounds: int = 2000) -> dict[str, float]:
    """Share of pairs where the good reply scores higher (ties count half), with a bootstrap 95% CI."""
    wins = [1.0 if m > 0 else 0.5 if m == 0 else 0.0 for m in margins]
    rng = random.Random(seed)
    boot = sorted(sum(rng.choices(wins, k=len(wins))) / len(wins) for _ in range(rounds))
    return {
        "rate": sum(wins) / len(wins),
        "ci95": [boot[int(0.025 * rounds)], boot[int(0.975 * rounds)]],
        "n": len(wins),
    }


def train_recipe(
    recipe: str,
    train_file: Path,
    out: Path,
    steps: int,
    batch: int,
    lr: float,
    max_length: int,
    seed: int,
    desirable_weight: float,
) -> dict[str, Any]:
    from tunelab.config import load
    from tunelab.train.run import run

    config = load(
        data={
            "model": {"name": "smollm2-135m"},
            "data": {"train": str(train_file)},
            "train": {
                "recipe": recipe,
                "max_steps": steps,
                "batch_size": batch,
                "learning_rate": lr,
                "logging_steps": 2,
                "eval_steps": steps,
                "save_steps": steps,
                "seed": seed,
                "warmup_ratio": 0.1,
            },
            "preference": {"max_length": max_length, "desirable_weight": desirable_weight},
            "output": {"dir": str(out / recipe)},
        }
    )
    began, cpu = time.perf_counter(), cpu_seconds()
    summary = run(config)
    return {"summary": summary, "wall_s": round(time.perf_counter() - began, 1), "cpu_s": round(cpu_seconds() - cpu, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/taskmaster4"))
    parser.add_argument("--recipes", default="kto,dpo")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument(
        "--batch", type=int, default=2, help="KTO needs at least 2 (its KL term compares within a batch)"
    )
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--eval-pairs", type=int, default=120)
    parser.add_argument("--held-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/taskmaster_preference")
    args = parser.parse_args()

    from tunelab import rundir
    from tunelab.data.taskmaster import convert_rewards, opening, preference_pairs, split_by_opening
    from tunelab.models.load import load_model

    out = Path(args.out)
    converted = convert_rewards(Path(args.data) / "reward")
    train_rows, held_rows = split_by_opening(converted.rows, args.held_fraction, args.seed)
    train_file = rundir.write_jsonl(out / "train_judgements.jsonl", train_rows)
    pairs = preference_pairs(held_rows)
    random.Random(args.seed).shuffle(pairs)
    pairs = pairs[: args.eval_pairs]
    sizes = {
        "judgements_read": converted.n_read,
        "kept": len(converted.rows),
        "rejected": len(converted.rejected),
        "train_rows": len(train_rows),
        "train_pairs": len(preference_pairs(train_rows)),
        "train_openings": len({opening(r) for r in train_rows}),
        "held_rows": len(held_rows),
        "held_openings": len({opening(r) for r in held_rows}),
        "eval_pairs": len(pairs),
    }
    print("sizes", json.dumps(sizes))

    result: dict[str, Any] = {"sizes": sizes, "settings": vars(args), "models": {}, "training": {}}
    began, cpu = time.perf_counter(), cpu_seconds()
    base, tokenizer = load_model("smollm2-135m")
    base_scores = score_pairs(base, tokenizer, pairs, args.max_length)
    result["models"]["base"] = {
        "logprob": accuracy([g - b for g, b in base_scores]),
        "wall_s": round(time.perf_counter() - began, 1),
        "cpu_s": round(cpu_seconds() - cpu, 1),
    }
    del base
    # KTO: good replies outnumber bad ones about 4.7 to 1, so (as TRL's KTO paper guidance says)
    # the desirable loss is weighted down to balance the two: weight x good ~ 1.15 x bad.
    good = sum(bool(r["label"]) for r in train_rows)
    weight = round(1.15 * (len(train_rows) - good) / good, 3)
    result["settings"]["kto_desirable_weight"] = weight
    for recipe in args.recipes.split(","):
        result["training"][recipe] = train_recipe(
            recipe, train_file, out, args.steps, args.batch, args.lr, args.max_length, args.seed, weight
        )
        began, cpu = time.perf_counter(), cpu_seconds()
        tuned, _ = load_model(str(out / recipe), merge=True)
        tuned_scores = score_pairs(tuned, tokenizer, pairs, args.max_length)
        implicit = [(tg - bg) - (tb - bb) for (tg, tb), (bg, bb) in zip(tuned_scores, base_scores)]
        result["models"][recipe] = {
            "logprob": accuracy([g - b for g, b in tuned_scores]),
            "implicit_reward": accuracy(implicit),
            "wall_s": round(time.perf_counter() - began, 1),
            "cpu_s": round(cpu_seconds() - cpu, 1),
        }
        del tuned
    rundir.write_json(out / "preference.json", result)
    print(f"\nheld-out pairs: {len(pairs)} (from {sizes['held_openings']} dialogue openings never trained on)")
    print(f"{'model':8} {'score':16} {'good > bad':>10}  95% CI")
    for name, scores in result["models"].items():
        for kind in ("logprob", "implicit_reward"):
            if kind in scores:
                s = scores[kind]
                print(f"{name:8} {kind:16} {s['rate']:10.1%}  [{s['ci95'][0]:.1%}, {s['ci95'][1]:.1%}]")
    for recipe, t in result["training"].items():
        print(f"{recipe}: {t['summary']['steps']} steps x batch {args.batch}, {t['wall_s']} s wall, {t['cpu_s']} s CPU")


if __name__ == "__main__":
    main()
