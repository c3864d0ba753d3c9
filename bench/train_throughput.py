"""LoRA SFT training speed: tunelab's trainer against TRL's SFTTrainer, in the same run.

Both train SmolLM2-135M-Instruct (fp32 unless a variant says otherwise), LoRA r=16 alpha=32 on
every linear layer (of the last 15 decoder layers in the -upperhalf variants; both sides alike),
batch 8 (--batch), the same learning rate and schedule, on the demo's cafe dialogues (256 train + 32
validation conversations, seed 0). Both get the SAME pre-tokenized examples:
input_ids + labels from tunelab's chat-template masking (loss on assistant turns only), so
they train on exactly the same target tokens; TRL takes a tokenized dataset with a `labels`
column as is (SmolLM2's template has no `{% generation %}` markers for `assistant_only_loss`).
Both see the batches in the same seeded random order (each step's examples are fingerprinted and
the ratio lines say whether two variants trained on the same ones in the same order). TRL runs
with its own defaults (its SFTConfig turns gradient checkpointing on); trl-fastest is its fastest
setting on this CPU (no checkpointing, bf16 autocast where bf16 is native), the peer of the ratios.

Each run is its own process (so peak RSS and time to the first step are its own), and the
variants alternate A B A B. Reported per run: all tokens/s (non-padding) and target tokens/s
over the steps after the first (the first holds one-off warm-up), peak RSS, time from process
start to the end of the first step, and the validation loss afterwards computed by one shared
function (mean cross-entropy over the validation targets) for every variant. Then the ratios,
and the FLOP utilisation against this machine's measured matmul peak.

    .venv/bin/python bench/train_throughput.py [--steps 4] [--rounds 2] [--batch 8] [--variants trl-fastest,tunelab-auto]
    .venv/bin/python bench/train_throughput.py --steps 3 --val 8 --rounds 1 \
        --variants trl,tunelab,tunelab-ungrouped,trl,tunelab,tunelab-bf16base    # the levers, one each
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time

STARTED = time.perf_counter()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# variant -> (trainer, settings). Levers are measured one at a time against "tunelab": fp32,
# uncompiled, as pinned below; "tunelab-auto" is what a run gets by default (precision and compile
# auto: the CPU probed, bf16_base + compile where bf16 is native).
FP32 = {"precision": "fp32", "compile": False}
VARIANTS = {
    "trl": ("trl", {}),
    "trl-bf16": ("trl", {"precision": "bf16"}),
    "trl-nockpt": ("trl", {"gradient_checkpointing": False}),  # TRL's SFTConfig turns it on by default
    "trl-bf16-nockpt": ("trl", {"precision": "bf16", "gradient_checkpointing": False}),
    # TRL's fastest setting on this CPU: no gradient checkpointing, bf16 autocast where bf16 is native
    # (the same probe that decides tunelab's auto); the ratio lines are against it.
    "trl-fastest": ("trl", {"gradient_checkpointing": False, "precision": "probe"}),
    "tunelab": ("tunelab", FP32),  # target-only head, length-grouped batches, fp32
    "tunelab-auto": ("tunelab", {}),  # the defaults
    # the defaults with the batch run as one padded pass instead of groups of similar length
    "tunelab-auto-padded": ("tunelab", {"length_groups": None}),
    # the defaults with the cut's cost of one more group at 256 padded positions instead of 96
    "tunelab-auto-cut256": ("tunelab", {"length_groups": 256}),
    # the defaults with the stock bf16 attention instead of fp32 attention (train.precision.fp32_attention)
    "tunelab-auto-bf16attention": ("tunelab", {"attention": "sdpa"}),
    # the defaults with the LoRA factors multiplying in bf16 (weights fp32), as bf16 autocast would
    "tunelab-auto-bf16adapter": ("tunelab", {"adapter_products": "bf16"}),
    # the defaults with transformers' eager attention (matmul + softmax, compiled with the layer)
    "tunelab-auto-eagerattention": ("tunelab", {"attention": "eager"}),
    # bf16_base with the whole decoder compiled as one graph instead of each layer (fewer guards)
    "tunelab-wholecompile": ("tunelab", {"precision": "bf16_base", "compile": False, "whole_compile": True}),
    "tunelab-fullhead": ("tunelab", {**FP32, "target_only_head": False}),
    "tunelab-ungrouped": ("tunelab", {**FP32, "group_by_length": False}),
    "tunelab-bf16": ("tunelab", {**FP32, "precision": "bf16"}),
    "tunelab-bf16base": ("tunelab", {**FP32, "precision": "bf16_base"}),
    "tunelab-compile": ("tunelab", {**FP32, "compile": True}),  # train.compile: every decoder layer compiled
    "tunelab-fast": ("tunelab", {"precision": "bf16_base", "compile": True}),  # both together
    # the same batches as TRL and tunelab-ungrouped: the like-for-like check of validation loss
    "tunelab-fast-ungrouped": ("tunelab", {"precision": "bf16_base", "compile": True, "group_by_length": False}),
    "tunelab-1thread": ("tunelab", {**FP32, "threads": 1}),
    # LoRA in the last 15 of the 30 layers (model.lora.layers, the cafe demo's setting), on both sides
    "tunelab-auto-upperhalf": ("tunelab", {"lora_layers": 15}),
    "trl-fastest-upperhalf": ("trl", {"gradient_checkpointing": False, "precision": "probe", "lora_layers": 15}),
}
LR, MAX_LENGTH, SEED = 1e-3, 384, 0
BATCH = 8  # --batch


def examples(n_train: int, n_val: int):
    from tunelab.data.split import split
    from tunelab.data.synth import cafe
    from tunelab.data.tokenize import tokenize_conversation
    from tunelab.models.load import load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m")
    train, val = split(cafe.generate(n_train + n_val, seed=SEED), n_val / (n_train + n_val), SEED)

    def tok(convs):
        return [e for e in (tokenize_conversation(tokenizer, c, MAX_LENGTH) for c in convs) if e is not None]

    return tokenizer, tok(train), tok(val)


def val_loss(model, val, pad_id: int) -> float:
    """Mean cross-entropy over every validation target token (the same function for every variant)."""
    import torch

    from tunelab.train.trainer import PadCollator

    collate, total, count = PadCollator(pad_id), 0.0, 0
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(val), 8):
            batch = collate([{"input_ids": e.input_ids, "labels": e.labels} for e in val[i : i + 8]])
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
            labels = batch["labels"][:, 1:]
            total += torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="sum").item()
            count += int((labels != -100).sum())
    return total / count


def step_clock():
    """A callback recording when each optimizer step ends."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

    return Clock()


def counting(trainer_cls):
    """`trainer_cls` counting each step's non-padding, target and padded (rows x longest) tokens."""

    class Counting(trainer_cls):
        step_tokens: list[tuple[int, int, int, int]] = []
        step_batches: list[str] = []  # each step's examples, so two trainers' orders can be compared

        def training_step(self, model, inputs, num_items_in_batch=None):
            mask = inputs["attention_mask"]
            # positions the step computes: fewer where tunelab's trainer cuts the batch into groups
            parts = self._length_groups(inputs) if hasattr(self, "_length_groups") else [inputs]
            computed = sum(part["attention_mask"].numel() for part in parts)
            tokens = (int(mask.sum()), int((inputs["labels"] != -100).sum()), mask.numel(), computed)
            self.step_tokens.append(tokens)
            rows = sorted(tuple(r[m.bool()].tolist()) for r, m in zip(inputs["input_ids"], inputs["attention_mask"]))
            self.step_batches.append(hashlib.sha1(repr(rows).encode()).hexdigest()[:12])
            return super().training_step(model, inputs, num_items_in_batch)

    return Counting


def lora_model(settings: dict):
    """The model section both trainers' adapters come from: LoRA r=16 alpha=32 on every linear layer
    of every decoder layer, or of the last `lora_layers` where the variant says so."""
    from tunelab.config import ModelConfig

    return ModelConfig(name="smollm2-135m", lora={"r": 16, "alpha": 32, "layers": settings.get("lora_layers", "all")})


def build_tunelab(settings: dict, train, tokenizer, out: str, steps: int, clock):
    from tunelab.config import load
    from tunelab.train.callbacks import TokenProgressCallback
    from tunelab.train.trainer import ExampleDataset, MaskedLossTrainer, PadCollator, load_trainable, training_arguments

    train_cfg = {
        "max_steps": steps,
        "learning_rate": LR,
        "batch_size": BATCH,
        "seed": SEED,
        "logging_steps": 1,
        "warmup_ratio": 0.05,
        # no evaluation and no checkpoint inside the timed steps (auto would save ten a run)
        "eval_steps": steps + 1,
        "save_steps": steps + 1,
    }
    train_cfg.update({k: settings[k] for k in ("precision", "group_by_length", "threads", "compile") if k in settings})
    config = load(
        data={
            "model": lora_model(settings).model_dump(),
            "data": {"train": "unused.jsonl", "max_length": MAX_LENGTH},
            "train": train_cfg,
            "output": {"dir": out},
        }
    )
    if config.train.threads:
        import torch

        torch.set_num_threads(config.train.threads)
    from tunelab.train.precision import choice_line, resolve

    configured, config = config, resolve(config)  # the rule of every run; says what auto chose
    print(f"{out}: {choice_line(configured, config)}", file=sys.stderr, flush=True)
    model, _ = load_trainable(config)
    if settings.get("adapter_products") == "bf16":  # before the first forward, so the layers trace it
        bf16_adapter_products(model)
    if "attention" in settings:  # before the first forward, so the compiled layers trace this one
        model.get_base_model().set_attn_implementation(settings["attention"])
    if settings.get("whole_compile"):
        import torch._dynamo

        # one graph for embeddings, the 30 layers and the final norm; room for the lengths' variants
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        model.get_base_model().model.compile(dynamic=True)
    args = training_arguments(config, __import__("pathlib").Path(out), has_val=False)
    progress = TokenProgressCallback()
    trainer = counting(MaskedLossTrainer)(
        model=model,
        args=args,
        train_dataset=ExampleDataset(train),
        data_collator=PadCollator(tokenizer.pad_token_id),
        callbacks=[clock],
        progress=progress,
        target_only_head=settings.get("target_only_head", True),
        **({"length_groups": settings["length_groups"]} if "length_groups" in settings else {}),
    )
    return trainer, model


def bf16_adapter_products(model) -> None:
    """Each LoRA factor multiplies in its input's dtype (bf16 over the bf16 base) instead of PEFT's
    fp32: its weight stays fp32 for the optimizer and is cast for the product."""
    import torch
    from peft.tuners.lora import LoraLayer

    class InputDtypeLinear(torch.nn.Linear):
        def forward(self, x):
            bias = None if self.bias is None else self.bias.to(x.dtype)
            return torch.nn.functional.linear(x, self.weight.to(x.dtype), bias)

    for module in model.modules():
        if isinstance(module, LoraLayer):
            module.cast_input_dtype_enabled = False  # PEFT's switch for its cast of the input to fp32
            for factor in (*module.lora_A.values(), *module.lora_B.values()):
                factor.__class__ = InputDtypeLinear


def build_trl(settings: dict, train, tokenizer, out: str, steps: int, clock):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from tunelab.models.adapters import peft_config
    from tunelab.models.hardware import describe_cpu
    from tunelab.models.registry import resolve

    precision = settings.get("precision")
    if precision == "probe":
        precision = "bf16" if describe_cpu()["precision"] != "fp32" else "fp32"
    args = SFTConfig(
        output_dir=out,
        max_steps=steps,
        learning_rate=LR,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        per_device_train_batch_size=BATCH,
        seed=SEED,
        data_seed=SEED,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        max_length=MAX_LENGTH,
        bf16=precision == "bf16",
        dataloader_num_workers=0,
        disable_tqdm=True,
        max_grad_norm=1.0,
        weight_decay=0.0,
        gradient_checkpointing=settings.get("gradient_checkpointing", True),
    )
    model = AutoModelForCausalLM.from_pretrained(resolve("smollm2-135m"), dtype=torch.float32)
    data = Dataset.from_list([{"input_ids": e.input_ids, "labels": e.labels} for e in train])
    peft = peft_config(lora_model(settings), model)
    trainer = counting(SFTTrainer)(
        model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=peft, callbacks=[clock]
    )
    return trainer, trainer.model


def run_one(variant: str, steps: int, n_train: int, n_val: int, out: str) -> dict:
    """Train one variant in this process and measure it."""
    import torch
    from transformers import set_seed

    kind, settings = VARIANTS[variant]
    tokenizer, train, val = examples(n_train, n_val)
    set_seed(SEED)
    clock = step_clock()
    build = build_trl if kind == "trl" else build_tunelab
    trainer, model = build(settings, train, tokenizer, out, steps, clock)
    trainer.train()
    first = clock.ends[0] - STARTED
    tokens = trainer.step_tokens[1:steps]
    seconds = clock.ends[steps - 1] - clock.ends[0]
    # Judged as users run the result: the adapter on the fp32 base (a no-op for fp32 variants).
    loss = val_loss(model.float(), val, tokenizer.pad_token_id)
    return {
        "variant": variant,
        "steps": steps,
        "threads": torch.get_num_threads(),
        "tokens_per_s": sum(t[0] for t in tokens) / seconds,
        "target_tokens_per_s": sum(t[1] for t in tokens) / seconds,
        "all_tokens": sum(t[0] for t in trainer.step_tokens),
        "target_tokens": sum(t[1] for t in trainer.step_tokens),
        # the share of the batches' rows x longest that is padding, and of the positions computed
        "padding_share": 1 - sum(t[0] for t in trainer.step_tokens) / sum(t[2] for t in trainer.step_tokens),
        "padding_computed": 1 - sum(t[0] for t in trainer.step_tokens) / sum(t[3] for t in trainer.step_tokens),
        "first_step_s": first,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "val_loss": loss,
        "batch": BATCH,
        "order": trainer.step_batches,
        "step_s": [round(b - a, 2) for a, b in zip(clock.ends, clock.ends[1:steps])],
        "loadavg": os.getloadavg()[0],
    }


def flops_per_step(tokens: int, targets: int, lora_layers: int | str = "all") -> float:
    """FLOPs a LoRA step needs: forward through the frozen body for every token (2 per weight), the
    input-gradient (2 more) through the layers from the lowest adapter up (frozen weights get no weight
    gradient; the layers below it need none), the head for target tokens only."""
    from transformers import AutoConfig

    from tunelab.models.registry import resolve

    c = AutoConfig.from_pretrained(resolve("smollm2-135m"))
    kv = c.num_key_value_heads * (c.hidden_size // c.num_attention_heads)
    layer = 2 * c.hidden_size**2 + 2 * c.hidden_size * kv + 3 * c.hidden_size * c.intermediate_size
    adapted = c.num_hidden_layers if lora_layers == "all" else lora_layers
    return (2 * c.num_hidden_layers + 2 * adapted) * layer * tokens + 4 * c.vocab_size * c.hidden_size * targets


def load_seconds() -> list[float]:
    """[imports, first load, second load] seconds in a fresh process: the cached converted model +
    tokenizer. The first load also pays transformers' lazy imports (tokenizers, the Llama code)."""
    code = (
        "import time;t=time.perf_counter();import torch;from tunelab.models.registry import resolve;"
        "from transformers import AutoModelForCausalLM, AutoTokenizer;out=[time.perf_counter()-t]\n"
        "for _ in range(2):\n"
        " t=time.perf_counter();p=resolve('smollm2-135m');AutoTokenizer.from_pretrained(p);"
        "AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32);out.append(time.perf_counter()-t)\n"
        "print(*out)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [round(float(x), 2) for x in done.stdout.split()[-3:]]


def summarize(results: list[dict], peaks: dict[str, float]) -> None:
    by: dict[str, list[dict]] = {}
    for r in results:
        by.setdefault(r["variant"], []).append(r)

    def mean(rows, k):
        return sum(r[k] for r in rows) / len(rows)

    print(
        f"\n{'variant':18} {'tok/s':>7} {'target/s':>8} {'1st step s':>10} {'RSS MB':>7} {'val loss':>8} {'util fp32':>9} {'util bf16':>9} {'padding':>7} {'computed':>8}"
    )
    for name, rows in by.items():
        tps, tgt = mean(rows, "tokens_per_s"), mean(rows, "target_tokens_per_s")
        flops = flops_per_step(tps, tgt, VARIANTS[name][1].get("lora_layers", "all"))  # per second of training
        print(
            f"{name:18} {tps:7.1f} {tgt:8.1f} {mean(rows, 'first_step_s'):10.1f} {max(r['peak_rss_mb'] for r in rows):7.0f} {mean(rows, 'val_loss'):8.4f} {flops / 1e9 / peaks['fp32']:9.1%} {flops / 1e9 / peaks['bf16']:9.1%} {mean(rows, 'padding_share'):7.1%} {mean(rows, 'padding_computed'):8.1%}"
        )
    peer = next((name for name in ("trl-fastest", "trl-bf16-nockpt", "trl") if name in by), None)
    if peer is None:
        return
    base = by[peer]
    for name, rows in by.items():
        if name == peer:
            continue
        same = all(r["order"] == b["order"] for r, b in zip(rows, base))
        # Each round runs the peer and this variant minutes apart: their ratio drifts less with the
        # machine's speed than the means do, so with several rounds the median round is printed too.
        rounds = sorted(r["tokens_per_s"] / b["tokens_per_s"] for r, b in zip(rows, base))
        by_round = (
            f" (round by round: median x{statistics.median(rounds):.2f}, x{rounds[0]:.2f}-x{rounds[-1]:.2f})"
            if len(rounds) > 1
            else ""
        )
        print(
            f"{name} / {peer}: tokens/s x{mean(rows, 'tokens_per_s') / mean(base, 'tokens_per_s'):.2f}{by_round}, "
            f"val loss {100 * (mean(rows, 'val_loss') / mean(base, 'val_loss') - 1):+.2f}%, "
            f"{'the same examples in the same order' if same else 'OTHER examples or order than ' + peer}"
        )


def main() -> None:
    global BATCH
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="trl,tunelab", help=f"comma-separated, from: {', '.join(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=BATCH, help="dialogues a step, every variant")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--train", type=int, default=256)
    parser.add_argument("--val", type=int, default=32)
    parser.add_argument("--out", default="runs/train_throughput")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process: run this variant, print JSON
    args = parser.parse_args()
    BATCH = args.batch
    if args.one:
        print(json.dumps(run_one(args.one, args.steps, args.train, args.val, f"{args.out}/{args.one}")))
        return
    import torch

    from tunelab.models.hardware import matmul_peak

    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    from tunelab.models.hardware import cpu_model

    print(
        f"{cpu_model()}, batch {args.batch}, cpu threads {torch.get_num_threads()}, load average {os.getloadavg()}, matmul peak GFLOP/s: fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f}"
    )
    print(f"cached model in a fresh process, seconds [imports, first load, second load]: {load_seconds()}")
    results = []
    for round_ in range(args.rounds):
        for variant in args.variants.split(","):
            cmd = [
                sys.executable,
                __file__,
                "--one",
                variant,
                "--steps",
                str(args.steps),
                "--train",
                str(args.train),
                "--val",
                str(args.val),
                "--out",
                args.out,
                "--batch",
                str(args.batch),
            ]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{variant} failed:\n{done.stderr[-3000:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {round_ + 1} {json.dumps(results[-1])}", flush=True)
    # The peak is what the machine can do: other users' jobs only ever lower a measurement.
    peaks = {
        "fp32": max(peaks["fp32"], matmul_peak(torch.float32)),
        "bf16": max(peaks["bf16"], matmul_peak(torch.bfloat16)),
    }
    print(
        f"matmul peak GFLOP/s, best of before and after: fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f}; load average {os.getloadavg()}"
    )
    summarize(results, peaks)


if __name__ == "__main__":
    main()
