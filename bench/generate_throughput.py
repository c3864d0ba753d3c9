"""Batched generation (`tunelab eval`'s) against a one-context-at-a-time `model.generate` loop.

Both run greedy on the same contexts (every assistant turn of seeded cafe-ordering dialogues,
rendered with the chat template), the same model (SmolLM2-135M-Instruct, float32) and the same
max_new_tokens and stop tokens. Prints each side's wall time and the speed ratio, and how many
of the greedy replies are token-for-token identical.

--variants times tunelab's batched generation alone in several dtypes and batch sizes against the
first one listed, in the same run (each variant loads the model afresh in its dtype):

    .venv/bin/python bench/generate_throughput.py [--n 64] [--max-new-tokens 64] [--batch-size 16]
    .venv/bin/python bench/generate_throughput.py --n 277 --variants float32:32,float32:64,bfloat16:32,bfloat16:64
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def contexts(n: int) -> list:
    from tunelab.data.synth.cafe import generate
    from tunelab.eval.contexts import build_contexts

    found: list = []
    conversations = 2 * n
    while len(found) < n:
        found = build_contexts(generate(conversations, seed=0))
        conversations *= 2
    return found[:n]


def plain_loop(
    model, tokenizer, prompts, max_new_tokens: int, stop_ids: list[int]
) -> tuple[list[tuple[int, ...]], float]:
    """What a user writes by hand: one prompt, one generate call, decode, next."""
    import torch

    replies = []
    began = time.perf_counter()
    with torch.inference_mode():
        for prompt in prompts:
            ids = torch.tensor([prompt])
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=stop_ids,
                pad_token_id=tokenizer.pad_token_id,
            )
            new = out[0, ids.shape[1] :].tolist()
            cut = next((i for i, t in enumerate(new) if t in stop_ids), len(new))
            replies.append(tuple(new[:cut]))
    return replies, time.perf_counter() - began


def compare_variants(args) -> None:
    """tunelab's batched generation in each dtype:batch of --variants, timed against the first."""
    import torch

    from tunelab.generation.replies import GenerationSettings, generate_replies, render_prompts
    from tunelab.models.hardware import cpu_model, inference_dtype
    from tunelab.models.load import load_model

    found = contexts(args.n)
    print(f"{cpu_model()}, torch threads {torch.get_num_threads()}; auto: {inference_dtype()[1]}")
    first, replies = None, {}
    for variant in args.variants.split(","):
        name, batch = variant.split(":")
        dtype = "auto" if name == "auto" else getattr(torch, name)
        model, tokenizer = load_model(args.model, merge=True, dtype=dtype)  # as `tunelab eval` loads it
        prompts = render_prompts(tokenizer, [c.messages for c in found])
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=int(batch))
        began = time.perf_counter()
        out = generate_replies(model, tokenizer, prompts, settings, progress=False)
        seconds = time.perf_counter() - began
        first = first or seconds
        replies[variant] = [r.token_ids for r in out]
        same = sum(a == b for a, b in zip(replies[variant], next(iter(replies.values()))))
        print(
            f"{variant:>14}: {seconds:6.1f} s  {sum(r.new_tokens for r in out) / seconds:6.1f} new tokens/s  "
            f"{first / seconds:5.2f}x the first  ({str(model.dtype).removeprefix('torch.')}; "
            f"{same}/{len(out)} replies as the first's)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=64, help="contexts")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--variants", help="dtype:batch,... (float32, bfloat16 or auto): batched generation only")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from tunelab.generation.replies import GenerationSettings, generate_replies, render_prompts
    from tunelab.generation.tokens import stop_token_ids
    from tunelab.models.load import load_model

    if args.variants:
        compare_variants(args)
        return
    model, tokenizer = load_model(args.model)
    prompts = render_prompts(tokenizer, [c.messages for c in contexts(args.n)])
    stop_ids = stop_token_ids(tokenizer, model)
    lengths = sorted(len(p) for p in prompts)
    print(
        f"model {args.model}, {len(prompts)} contexts ({lengths[0]}-{lengths[-1]} tokens), "
        f"max_new_tokens {args.max_new_tokens}, torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}"
    )

    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    began = time.perf_counter()
    batched = generate_replies(model, tokenizer, prompts, settings, description="tunelab batched")
    batched_s = time.perf_counter() - began
    plain, plain_s = plain_loop(model, tokenizer, prompts, args.max_new_tokens, stop_ids)

    same = sum(b.token_ids == p for b, p in zip(batched, plain))
    tokens = sum(len(p) for p in plain)
    print(f"plain loop:      {plain_s:8.1f} s  ({tokens / plain_s:6.1f} new tokens/s)")
    print(
        f"tunelab batched: {batched_s:8.1f} s  ({sum(b.new_tokens for b in batched) / batched_s:6.1f} new tokens/s, "
        f"batch size {args.batch_size})"
    )
    print(f"speed ratio:     {plain_s / batched_s:8.2f}x   (target >= 3x)")
    print(f"identical greedy replies: {same}/{len(prompts)}")
    for b, p in zip(batched, plain):
        if b.token_ids != p:
            print(
                f"  differs: batched {tokenizer.decode(b.token_ids)[:70]!r}\n           plain   {tokenizer.decode(p)[:70]!r}"
            )


if __name__ == "__main__":
    main()
