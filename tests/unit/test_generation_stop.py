"""Generation stops at the end of the assistant's turn, with the real SmolLM2: no end-of-turn or
next-turn marker in a reply, and in a batch whose replies end at different times each reply
holds exactly its own tokens — what plain one-at-a-time `model.generate` produces before its stop."""

from __future__ import annotations

import pytest

from tunelab.data.synth import cafe
from tunelab.eval.contexts import build_contexts
from tunelab.generation.replies import GenerationSettings, generate_replies, render_prompts

MAX_NEW = 32


@pytest.fixture(scope="module")
def smol(smol_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smol_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(smol_dir)


@pytest.fixture(scope="module")
def batch(smol):
    model, tokenizer = smol
    # Four cafe contexts whose base-model replies end at different lengths (two within MAX_NEW).
    contexts = build_contexts(cafe.generate(3, seed=2, system_prompt=None))
    prompts = render_prompts(tokenizer, [contexts[i].messages for i in (0, 1, 3, 4)])
    settings = GenerationSettings(max_new_tokens=MAX_NEW, batch_size=len(prompts))
    return prompts, generate_replies(model, tokenizer, prompts, settings, progress=False)


def test_replies_hold_no_end_of_turn_or_next_turn_marker(smol, batch):
    _, tokenizer = smol
    _, replies = batch
    markers = {tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|im_start|>", "<|endoftext|>")}
    for reply in replies:
        raw = tokenizer.decode(reply.token_ids, skip_special_tokens=False)
        assert "<|im_end|>" not in raw and "<|im_start|>" not in raw
        assert "<|im_end|>" not in reply.text and "<|im_start|>" not in reply.text
        assert not markers & set(reply.token_ids)
        assert reply.new_tokens == len(reply.token_ids) and reply.text


def test_a_reply_that_ends_early_counts_only_its_own_tokens(smol, batch):
    import torch

    model, tokenizer = smol
    prompts, replies = batch
    lengths = [r.new_tokens for r in replies]
    assert min(lengths) < MAX_NEW and max(lengths) == MAX_NEW, f"the batch must mix early and capped replies: {lengths}"
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    with torch.inference_mode():
        for prompt, reply in zip(prompts, replies):
            alone = model.generate(
                input_ids=torch.tensor([prompt]),
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                max_new_tokens=MAX_NEW,
                do_sample=False,
                eos_token_id=end_of_turn,
                pad_token_id=end_of_turn,
            )
            own = alone[0, len(prompt) :].tolist()
            if reply.new_tokens < MAX_NEW:
                # Generated alone, the reply is these tokens and then the end-of-turn token, nothing more.
                assert own == [*reply.token_ids, end_of_turn]
            else:
                assert own == list(reply.token_ids)
            assert reply.text == tokenizer.decode(reply.token_ids, skip_special_tokens=True).strip()
