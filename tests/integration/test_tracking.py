"""Each tracker, in its offline or local mode, holds the train loss that metrics.jsonl holds,
read back with the tracker's own reader."""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import pytest

# trackio fixes its storage folder when first imported: point it at a scratch folder first,
# so the test never writes into the user's ~/.cache.
os.environ.setdefault("TRACKIO_DIR", tempfile.mkdtemp(prefix="tunelab-trackio-"))

from test_adapters import tiny_config  # noqa: E402

from tunelab import rundir  # noqa: E402

PROJECT = f"tunelab-test-{os.getpid()}"


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory, tiny_model_dir) -> Path:
    """One tiny training run logging to all four trackers at once (W&B without an API key)."""
    from tunelab.train.recipes.sft import train

    tmp = tmp_path_factory.mktemp("tracked")
    config = tiny_config(
        tmp,
        tiny_model_dir,
        track=["tensorboard", "mlflow", "wandb", "trackio"],
        run_name="tiny-tracked",
        tags=["test", "tiny"],
        project=PROJECT,
    )
    with pytest.MonkeyPatch.context() as mp:
        for var in ("WANDB_API_KEY", "WANDB_MODE", "MLFLOW_TRACKING_URI"):
            mp.delenv(var, raising=False)
        mp.setenv("WANDB_SILENT", "true")
        train(config)
    return Path(config.output.dir)


def expected_train_loss(run_dir: Path) -> dict[int, float]:
    rows = rundir.read_metrics(run_dir, "loss", "train")
    assert len(rows) == 4
    return {r["step"]: r["value"] for r in rows}


@pytest.mark.slow  # shares one training run with all four trackers (~40-70 s on a busy 2-core box)
def test_tensorboard_event_files(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tracked_run / "tensorboard"))
    acc.Reload()
    logged = {e.step: e.value for e in acc.Scalars("train/loss")}
    assert logged == pytest.approx(expected_train_loss(tracked_run), rel=1e-6)  # event files store float32
    assert [e.step for e in acc.Scalars("val/loss")][:2] == [2, 4]


@pytest.mark.slow  # shares one training run with all four trackers (~40-70 s on a busy 2-core box)
def test_mlflow_sqlite_store_in_run_dir(tracked_run):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tracked_run / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(PROJECT)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "tiny-tracked" and {"test", "tiny"} <= set(run.data.tags)
    assert run.data.params["train.learning_rate"] == "0.01" and run.info.status == "FINISHED"
    logged = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/loss")}
    assert logged == expected_train_loss(tracked_run)


def read_wandb_records(path: Path) -> list:
    """Decode a .wandb transaction log: LevelDB-log framing (32 KiB blocks, 7-byte record headers)
    around W&B's own protobuf Records. wandb 0.31 no longer ships a Python reader for this file
    (its datastore moved into the Go wandb-core), so the framing is read here and every record is
    parsed with wandb's own `wandb_internal_pb2.Record`."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B transaction log"
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # too little room for a header: the block's tail is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            records.append(pending + chunk)
    parsed = []
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        parsed.append(record)
    return parsed


@pytest.mark.slow  # shares one training run with all four trackers (~40-70 s on a busy 2-core box)
def test_wandb_offline_run_files(tracked_run):
    (run_file,) = (tracked_run / "wandb").glob("offline-run-*/run-*.wandb")
    records = read_wandb_records(run_file)
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.display_name == "tiny-tracked" and list(run.tags) == ["test", "tiny"] and run.project == PROJECT
    logged = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            items = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item}
            if "train/loss" in items:
                logged[r.history.step.num] = items["train/loss"]
    assert logged == expected_train_loss(tracked_run)


@pytest.mark.slow  # shares one training run with all four trackers (~40-70 s on a busy 2-core box)
def test_trackio_local_store(tracked_run):
    from trackio.sqlite_storage import SQLiteStorage

    assert str(SQLiteStorage.get_project_db_path(PROJECT)).startswith(os.environ["TRACKIO_DIR"])
    logs = SQLiteStorage.get_logs(PROJECT, "tiny-tracked")
    logged = {row["step"]: row["train/loss"] for row in logs if "train/loss" in row}
    assert logged == expected_train_loss(tracked_run)


def test_no_trackers_by_default(tmp_path, tiny_model_dir):
    from tunelab.train.tracking import tracking_callbacks

    config = tiny_config(tmp_path, tiny_model_dir)
    assert config.track == [] and tracking_callbacks(config, tmp_path) == []
