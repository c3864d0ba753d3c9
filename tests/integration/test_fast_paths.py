"""The training speed paths compute what the plain path computes: the same loss and gradients on a
tiny model, to a stated tolerance (bf16 storage rounds; the tolerances say how much)."""

from __future__ import annotations

import copy

import pytest
import torch

from tunelab.config import ModelConfig
from tunelab.models.load import load_for_training
from tunelab.train import precision


def _batch(vocab: int) -> dict[str, torch.Tensor]:
    """Two rows, the second right-padded, labels on the last half of each."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (2, 48), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0
    labels = ids.clone()
    labels[:, :24] = -100
    labels[mask == 0] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _loss_and_grads(model, batch) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    grads = {n: p.grad.float().clone() for n, p in model.named_parameters() if p.requires_grad}
    return float(loss.detach()), grads


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


@pytest.fixture
def bf16_lora(tiny_model_dir):
    torch.manual_seed(0)
    model, _ = load_for_training(ModelConfig(name=tiny_model_dir, lora={"r": 8, "alpha": 16}), torch.bfloat16)
    # LoRA's B starts at zero, which would leave A's gradient zero: give B values so both are compared.
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return model


def test_fp32_attention_gives_the_fp32_models_loss_and_gradients(bf16_lora, monkeypatch):
    batch = _batch(bf16_lora.config.vocab_size)
    reference = copy.deepcopy(bf16_lora).float()  # every weight and the attention in fp32
    plain = copy.deepcopy(bf16_lora)  # the bf16 base with the stock (bf16) attention
    assert precision.fp32_attention(bf16_lora)

    seen: list[torch.dtype] = []
    from transformers.integrations import sdpa_attention

    original = sdpa_attention.sdpa_attention_forward
    monkeypatch.setattr(
        sdpa_attention, "sdpa_attention_forward", lambda m, q, *a, **k: seen.append(q.dtype) or original(m, q, *a, **k)
    )
    loss_ref, grads_ref = _loss_and_grads(reference, batch)
    seen.clear()
    loss_new, grads_new = _loss_and_grads(bf16_lora, batch)
    assert seen and set(seen) == {torch.float32}, "attention of the bf16 base did not run in fp32"
    loss_plain, grads_plain = _loss_and_grads(plain, batch)

    # The projections stay bf16 in both paths, so both differ from the fp32 model by bf16 rounding
    # (a relative 1e-2 on the loss); the adapter's gradients keep their direction.
    assert loss_new == pytest.approx(loss_ref, rel=1e-2)
    assert loss_plain == pytest.approx(loss_ref, rel=1e-2)
    assert grads_new.keys() == grads_ref.keys()
    for name in grads_ref:
        assert _cosine(grads_new[name], grads_ref[name]) > 0.99, name
        assert _cosine(grads_plain[name], grads_ref[name]) > 0.99, name


def test_fp32_attention_keeps_padding_out_and_generates_through_the_cache(bf16_lora):
    """The padded row's real positions get the same logits as the row alone (the mask still
    applies), and generation (the KV cache path, as behaviour evaluation uses it) runs under it."""
    precision.fp32_attention(bf16_lora)
    batch = _batch(bf16_lora.config.vocab_size)
    with torch.no_grad():
        padded = bf16_lora(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[1, :30]
        alone = bf16_lora(input_ids=batch["input_ids"][1:, :30]).logits[0]
    torch.testing.assert_close(padded.float(), alone.float(), atol=2e-2, rtol=2e-2)

    prompt = batch["input_ids"][:1, :12]
    with torch.no_grad():
        out = bf16_lora.generate(input_ids=prompt, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    assert out.shape == (1, 20)


def test_fp32_attention_leaves_other_attention_alone(tiny_model_dir):
    model, _ = load_for_training(ModelConfig(name=tiny_model_dir), torch.bfloat16)
    model.get_base_model().set_attn_implementation("eager")
    assert not precision.fp32_attention(model)
    assert model.get_base_model().config._attn_implementation == "eager"


@pytest.mark.parametrize("weighting", [{}, {"first_token_weight": 3.0, "focal_gamma": 2.0}])
def test_length_groups_give_the_padded_batchs_loss_and_gradients(tiny_model_dir, tmp_path, weighting):
    """A batch of long and short rows run in groups of similar length (each trimmed to its own
    longest row) gives the loss and adapter gradients of the one padded pass: fp32, so only the
    order of the sums differs (tolerance 1e-5 relative)."""
    from transformers import TrainingArguments

    from tunelab.train.callbacks import TokenProgressCallback
    from tunelab.train.length_groups import GROUP_COST
    from tunelab.train.trainer import MaskedLossTrainer

    torch.manual_seed(0)
    model, _ = load_for_training(ModelConfig(name=tiny_model_dir, lora={"r": 8, "alpha": 16}), torch.float32)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    lengths = [40, 300, 52, 280, 45, 290]
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, model.config.vocab_size, (len(lengths), max(lengths)), generator=g)
    mask = (torch.arange(max(lengths)) < torch.tensor(lengths)[:, None]).long()
    labels = torch.where((torch.arange(max(lengths)) % 20 >= 8) & (mask == 1), ids, -100)
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def loss_and_grads(groups: int | None, num_items: int | None):
        args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
        trainer = MaskedLossTrainer(
            model=model, args=args, progress=TokenProgressCallback(), length_groups=groups, **weighting
        )
        parts = trainer._length_groups(batch)
        model.zero_grad()
        loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=num_items)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        return len(parts), float(loss.detach()), grads

    for num_items in (None, 2 * int((labels != -100).sum())):  # alone, and within an accumulated batch
        n_one, loss_one, grads_one = loss_and_grads(None, num_items)
        n_cut, loss_cut, grads_cut = loss_and_grads(GROUP_COST, num_items)
        assert (n_one, n_cut) == (1, 2)  # the short rows apart from the long ones
        assert loss_cut == pytest.approx(loss_one, rel=1e-5)
        assert grads_cut.keys() == grads_one.keys() and grads_one
        for name in grads_one:
            torch.testing.assert_close(grads_cut[name], grads_one[name], rtol=1e-5, atol=1e-7)
