"""One cafe demo run with chosen levers (prompt, data size, steps, learning rate, ...), for docs/cafe.md.

Example:
  OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/cafe_levers.py --out runs/cafe/menu --prompt menu --n-train 400 --set epochs=1
Prints the demo's table (strict judge, 95% CIs) and writes demo_results.json under --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from tunelab.data.synth import cafe
from tunelab.demos.cafe import run_demo

PROMPTS = {"short": cafe.SYSTEM_PROMPT, "menu": cafe.MENU_PROMPT, "none": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--prompt", choices=sorted(PROMPTS), default="short")
    parser.add_argument("--n-train", type=int, default=400)
    parser.add_argument("--n-heldout", type=int, default=130)
    parser.add_argument("--n-val", type=int, default=24, help="validation dialogues (behaviour during training)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", action="store_true", help="also measure the base model (slow)")
    parser.add_argument("--adapter", default="lora", help="lora | full | ...")
    parser.add_argument("--varied-replies", action="store_true", help="several assistant phrasings per act")
    parser.add_argument("--twins", action="store_true", help="each asking dialogue followed by its complete twin")
    parser.add_argument("--set", action="append", default=[], help="train.KEY=VALUE override, e.g. epochs=1")
    args = parser.parse_args()
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    run_demo(
        args.out,
        n_train=args.n_train,
        n_heldout=args.n_heldout,
        seed=args.seed,
        measure_base=args.base,
        system_prompt=PROMPTS[args.prompt],
        adapter=args.adapter,
        varied_replies=args.varied_replies,
        twins=args.twins,
        n_val=args.n_val,
        **overrides,
    )


if __name__ == "__main__":
    main()
