"""`train.precision: auto` and `train.compile: auto`: one rule, decided by measuring the CPU once
per process, said in one line at the start of the run and recorded in its config.yaml; and the
batch size, learning rate and checkpoint metric that `auto` means, decided by the same `resolve`.

The other CPU kinds cannot run here, so the probe's matmul rates measured on them stand in
(docs/performance.md): the tests fake the measurement, not the rule."""

from __future__ import annotations

import pytest
import torch
import yaml

from tunelab import rundir
from tunelab.config import ConfigError, load
from tunelab.data.synth import cafe
from tunelab.models import hardware
from tunelab.train import precision as speed
from tunelab.train.session import Session

# (CPU model, fp32 and bf16 GFLOP/s of one thread at the probe's size) -> (precision, compile)
KINDS = [
    ("Intel(R) Xeon(R) Platinum 8481C (AMX)", 218.0, 1026.0, "bf16_base", True),
    ("AMD EPYC 9R14 (Zen 4, avx512_bf16)", 103.0, 206.0, "bf16_base", True),
    ("AMD EPYC 7R13 (AVX2 only)", 88.0, 3.0, "fp32", False),
]


@pytest.fixture
def fake_cpu(monkeypatch):
    """Stands in a CPU's model name and matmul rates for the probe; counts the probe's matmuls.
    The probe's once-per-process cache is emptied before and after, so no test sees another's CPU."""
    monkeypatch.delenv(hardware.AUTO_ENV, raising=False)
    monkeypatch.setattr(speed.torch.cuda, "is_available", lambda: False)
    calls: list[torch.dtype] = []

    def install(model: str, fp32: float, bf16: float) -> list[torch.dtype]:
        hardware.describe_cpu.cache_clear()
        monkeypatch.setattr(hardware, "cpu_model", lambda: model)
        rates = {torch.float32: fp32, torch.bfloat16: bf16}
        monkeypatch.setattr(hardware, "matmul_peak", lambda dtype, n, seconds: calls.append(dtype) or rates[dtype])
        return calls

    yield install
    hardware.describe_cpu.cache_clear()


@pytest.fixture
def fake_cuda(monkeypatch):
    """A CUDA device with bf16, as torch would report an H100."""
    monkeypatch.setattr(speed.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(speed.torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(speed.torch.cuda, "get_device_name", lambda: "NVIDIA H100 80GB HBM3")


def config_dict(tmp_path, out: str = "run", model: dict | None = None, **train: object) -> dict:
    rows = [c.to_openai() for c in cafe.generate(4, seed=1, system_prompt=None)]
    rundir.write_jsonl(tmp_path / "train.jsonl", rows)
    return {
        "model": {"name": "unused-by-these-tests", **(model or {})},
        "data": {"train": str(tmp_path / "train.jsonl")},
        "train": train,
        "output": {"dir": str(tmp_path / out)},
    }


@pytest.mark.parametrize(("cpu", "fp32", "bf16", "precision", "compiled"), KINDS)
def test_auto_resolves_by_the_measured_rates_and_the_run_directory_records_it(
    tmp_path, capsys, fake_cpu, cpu, fp32, bf16, precision, compiled
):
    calls = fake_cpu(cpu, fp32, bf16)
    session = Session.start(load(data=config_dict(tmp_path)), resume=False)
    assert (session.config.train.precision, session.config.train.compile) == (precision, compiled)
    # one line at the start: what was chosen, that auto chose it, the CPU, threads and both rates
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train: ")]
    assert len(lines) == 1
    assert f"precision {precision} (auto), compile {'on' if compiled else 'off'} (auto)" in lines[0]
    assert cpu in lines[0] and f"{torch.get_num_threads()} threads" in lines[0]
    assert f"bf16 matmul {bf16:.0f} vs fp32 {fp32:.0f} GFLOP/s" in lines[0]
    assert lines[0].endswith(
        "batch 1 (auto: CPU, one dialogue a step), lr 1e-3 (auto: LoRA), checkpoint by loss (auto: no behaviour evaluation)"
    )
    recorded = yaml.safe_load((tmp_path / "run" / rundir.CONFIG).read_text())["train"]
    assert (recorded["precision"], recorded["compile"]) == (precision, compiled)
    assert (recorded["batch_size"], recorded["learning_rate"], recorded["best_metric"]) == (1, 1e-3, "loss")
    assert recorded["probe"] == {
        "device": cpu,
        "threads": torch.get_num_threads(),
        "fp32_gflops_1thread": fp32,
        "bf16_gflops_1thread": bf16,
        "why": recorded["probe"]["why"],
    }
    assert ("native bf16" if precision == "bf16_base" else "no native bf16") in recorded["probe"]["why"]
    # the recorded config is a config: it loads again, and resolving it measures nothing
    probes = len(calls)
    again = speed.resolve(load(tmp_path / "run" / rundir.CONFIG))
    assert (again.train.precision, again.train.compile, len(calls)) == (precision, compiled, probes)


def test_the_probe_runs_once_per_process(tmp_path, fake_cpu):
    calls = fake_cpu(*KINDS[0][:3])
    for run in ("a", "b"):
        Session.start(load(data=config_dict(tmp_path, out=run)), resume=False)
    assert len(calls) == 6  # three alternating fp32/bf16 rounds, for the first run only
    assert calls.count(torch.bfloat16) == 3


def test_auto_keeps_fp32_where_the_fast_path_does_not_apply_without_measuring(tmp_path, fake_cpu):
    calls = fake_cpu(*KINDS[0][:3])  # a CPU on which the fast path would pay
    for model, train, why in (
        ({"adapter": "full"}, {}, "model.adapter full"),
        ({}, {"recipe": "dpo"}, "recipe dpo"),
        ({}, {"compile": False}, "train.compile false"),
    ):
        used = speed.resolve(load(data=config_dict(tmp_path, model=model, **train))).train
        assert (used.precision, used.compile) == ("fp32", False) and why in used.probe.why
    assert calls == []
    # compile auto follows an explicit precision: on with bf16_base, off with fp32
    assert speed.resolve(load(data=config_dict(tmp_path, precision="bf16_base"))).train.compile is True
    assert speed.resolve(load(data=config_dict(tmp_path, precision="fp32"))).train.compile is False
    assert calls == []


def test_a_cuda_gpu_keeps_its_own_rule(tmp_path, fake_cpu, fake_cuda):
    calls = fake_cpu(*KINDS[0][:3])
    used = speed.resolve(load(data=config_dict(tmp_path))).train
    assert (used.precision, used.compile, used.probe.device) == ("bf16", False, "NVIDIA H100 80GB HBM3")
    assert calls == []


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_auto_batch_learning_rate_and_checkpoint_metric_by_device_recipe_and_adapter(
    tmp_path, capsys, fake_cpu, request, device
):
    fake_cpu(*KINDS[2][:3])
    if device == "cuda":
        request.getfixturevalue("fake_cuda")
    batch = {"cpu": 1, "cuda": 8}[device]

    def used(model: dict | None = None, **train: object):
        return speed.resolve(load(data=config_dict(tmp_path, model=model, **train))).train

    for adapter, lr in [("lora", 1e-3), ("dora", 1e-3)] + [
        (a, 2e-4) for a in ("full", "qlora", "ia3", "prompt_tuning", "p_tuning")
    ]:
        t = used({"adapter": adapter})
        assert (t.batch_size, t.learning_rate, t.best_metric) == (batch, lr, "loss"), adapter
    for recipe in ("kto", "dpo"):  # TRL's recipes: not measured, the previous defaults (KTO refuses a batch of 1)
        t = used(recipe=recipe)
        assert (t.batch_size, t.learning_rate) == (4, 2e-4), recipe
    assert used(recipe="bake").batch_size == batch
    assert used(behaviour_eval={"enabled": True}).best_metric == "behaviour_correct"
    # each said in the run's first line, with why
    Session.start(load(data=config_dict(tmp_path, behaviour_eval={"enabled": True})), resume=False)
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train: ")]
    why = {"cpu": "CPU, one dialogue a step", "cuda": "CUDA, 8 dialogues a step"}[device]
    assert f"batch {batch} (auto: {why}), lr 1e-3 (auto: LoRA)" in line
    assert line.endswith("checkpoint by behaviour_correct (auto: behaviour evaluation on)")


def test_set_values_stay_and_resolving_twice_changes_nothing(tmp_path, fake_cpu):
    fake_cpu(*KINDS[2][:3])
    configured = load(
        data=config_dict(tmp_path, batch_size=3, learning_rate=5e-4, best_metric="loss", precision="fp32")
    )
    resolved = speed.resolve(configured)
    assert (resolved.train.batch_size, resolved.train.learning_rate, resolved.train.best_metric) == (3, 5e-4, "loss")
    assert speed.resolve(resolved) is resolved and speed.resolve_hyperparameters(resolved) is resolved
    assert speed.choice_line(configured, resolved).endswith("; batch 3, lr 5e-4, checkpoint by loss")
    set_all = dict(batch_size=3, learning_rate=5e-4, best_metric="loss", precision="fp32", compile=False)
    everything = load(data=config_dict(tmp_path, **set_all))
    assert speed.resolve(everything) is everything  # nothing left at auto: the very same config
    upper = load(data=config_dict(tmp_path, model={"lora": {"layers": 4}}, **set_all))
    assert speed.choice_line(upper, upper).endswith("checkpoint by loss, LoRA in the last 4 layers")
    half = speed.resolve_hyperparameters(load(data=config_dict(tmp_path)))
    assert (half.train.batch_size, half.train.precision) == (1, "auto")  # no probe: precision stays auto


def test_auto_is_the_default_and_a_number_or_auto_error_names_the_key(tmp_path):
    t = load(data=config_dict(tmp_path)).train
    assert (t.batch_size, t.learning_rate, t.best_metric) == ("auto", "auto", "auto")
    assert (t.group_by_length, t.warmup_ratio) == (False, 0.05)
    with pytest.raises(
        ConfigError, match=r"'train.batch_size': Input should be greater than or equal to 1, or 'auto' \(got 0\)"
    ):
        load(data=config_dict(tmp_path, batch_size=0))
    with pytest.raises(ConfigError, match=r"'train.learning_rate': Input should be greater than 0, or 'auto'"):
        load(data=config_dict(tmp_path, learning_rate=-1))
    assert load(data=config_dict(tmp_path, learning_rate="2e-3")).train.learning_rate == 2e-3  # YAML's 2e-3 is a string
    assert load(data=config_dict(tmp_path)).model.lora.layers == "all"
    with pytest.raises(ConfigError, match=r"'model.lora.layers': Input should be greater than or equal to 1, or 'all'"):
        load(data=config_dict(tmp_path, model={"lora": {"layers": 0}}))


def test_the_test_suite_pins_auto_to_uncompiled_fp32_without_measuring(tmp_path, monkeypatch):
    """conftest sets TUNELAB_AUTO_PRECISION=fp32, so the tiny training runs of other tests (on a CPU
    with native bf16 too) do not compile; a bad value is an error that names the variable."""
    monkeypatch.setattr(hardware, "describe_cpu", lambda: pytest.fail("the probe ran"))
    used = speed.resolve(load(data=config_dict(tmp_path))).train
    assert (used.precision, used.compile) == ("fp32", False) and hardware.AUTO_ENV in used.probe.why
    monkeypatch.setenv(hardware.AUTO_ENV, "bf16")
    with pytest.raises(ValueError, match=hardware.AUTO_ENV):
        speed.resolve(load(data=config_dict(tmp_path)))


def test_compile_is_auto_true_or_false_and_still_refused_outside_sft(tmp_path):
    assert load(data=config_dict(tmp_path)).train.compile == "auto"
    assert load(data=config_dict(tmp_path, compile=True, behaviour_eval={"enabled": True})).train.compile is True
    with pytest.raises(ConfigError, match="'train.compile'"):
        load(data=config_dict(tmp_path, compile="sometimes"))
    with pytest.raises(ConfigError, match="train.compile is supported for recipe sft"):
        load(data=config_dict(tmp_path, compile=True, recipe="bake"))
