"""The model card: written from the run's files, and its load snippet really loads the model."""

from __future__ import annotations

import re
from pathlib import Path

from test_adapters import tiny_config
from test_report import make_run_dir

from tunelab import rundir


def test_card_states_base_data_recipe_metrics_limits(tmp_path):
    from tunelab.models.card import model_card

    card = model_card(make_run_dir(tmp_path))
    assert card.startswith("# cafe-lora")
    assert "Fine-tuned from **smollm2-135m** with **lora**" in card
    assert "| train | 40 | 120.5 | 200 | 1204 | 25% |" in card  # data statistics from data_report.json
    assert "| lora.r | 8 |" in card and "| train.learning_rate | 0.001 |" in card
    assert (
        "validation loss: best 1.0177 at step 20" in card
        and "- bleu: 12.3" in card
        and "behaviour appropriateness: 71.0%" in card
    )
    assert "The validation set is small (4)" in card and "No safety" in card
    assert "load_model(" in card


def test_card_for_prompt_tuning_says_it_cannot_merge(tmp_path):
    from tunelab.models.card import model_card

    run = make_run_dir(tmp_path)
    rundir.write_text(
        run / rundir.CONFIG,
        "model: {name: base, adapter: prompt_tuning, prompt: {num_virtual_tokens: 8}}\ndata: {max_length: 128}\n",
    )
    (run / rundir.SCORES).unlink()
    card = model_card(run)
    assert "| prompt.num_virtual_tokens | 8 |" in card
    assert "cannot be merged" in card and "Not evaluated on generated replies" in card


def test_card_load_snippet_runs(tmp_path, tiny_model_dir):
    """Train a tiny LoRA run, write its card, and execute the card's own Python snippets."""
    from tunelab.models.card import write_model_card
    from tunelab.train.recipes.sft import train

    config = tiny_config(tmp_path, tiny_model_dir)
    train(config)
    card = write_model_card(config.output.dir).read_text()
    assert Path(config.output.dir, "README.md").exists()
    snippets = re.findall(r"```python\n(.*?)```", card, re.S)
    assert len(snippets) == 2  # tunelab's loader and plain peft
    for code in snippets:
        scope: dict = {}
        exec(code, scope)
        assert scope["model"] is not None and scope["tokenizer"].eos_token
        assert type(scope["model"]).__name__.startswith("Peft")
