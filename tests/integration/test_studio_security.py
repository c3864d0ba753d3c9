"""The studio left running for a team: a key made on first start and kept, the login URL, the Host
allow-list, cross-site refusal, no server paths from clients, errors that name the field and
never a Python exception; against a real server on 127.0.0.1 (no job is trained here)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tunelab.studio.app import Studio, login_url, serve_in_thread
from tunelab.studio.runner import failure_message
from tunelab.studio.security import KEY_FILE, SecurityError

CHAT = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})


def make(folder: Path, tiny: str, **kwargs) -> Studio:
    return Studio(folder, base_models=[tiny], tokenizer_model=tiny, **kwargs)


def upload(url: str, key: str, name: str, content: bytes) -> dict:
    answer = httpx.post(
        f"{url}/files",
        headers={"Authorization": f"Bearer {key}"},
        files={"file": (name, content)},
        data={"purpose": "fine-tune"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_first_start_makes_a_private_key_a_restart_keeps_and_the_login_url_logs_in(tmp_path, tiny_model_dir):
    first = make(tmp_path / "s", tiny_model_dir)
    key_file = tmp_path / "s" / KEY_FILE
    assert first.api_key and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert make(tmp_path / "s", tiny_model_dir).api_key == first.api_key  # kept across a restart
    with serve_in_thread(first) as url:
        base = url.removesuffix("/v1")
        assert httpx.get(f"{url}/models").status_code == 401
        assert httpx.get(f"{base}/").headers["location"] == "/login"
        wrong = httpx.get(f"{base}/login", params={"token": "guess"})
        assert wrong.status_code == 401 and "wrong" in wrong.text
        login = login_url("127.0.0.1", int(base.rsplit(":", 1)[1]), first.api_key)
        with httpx.Client(follow_redirects=True) as browser:
            page = browser.get(login)
            assert page.status_code == 200 and str(page.url) == f"{base}/" and "tunelab" in page.text
            assert browser.get(f"{url}/models").status_code == 200  # the cookie the login URL set


def test_no_auth_is_refused_on_a_reachable_host(tmp_path, tiny_model_dir):
    from tunelab.cli import app

    result = CliRunner().invoke(app, ["studio", "--no-auth", "--host", "0.0.0.0", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "--no-auth" in result.output
    with pytest.raises(SecurityError, match="0.0.0.0"):
        make(tmp_path / "s", tiny_model_dir, no_auth=True, host="0.0.0.0")
    open_studio = make(tmp_path / "s", tiny_model_dir, no_auth=True)
    assert open_studio.api_key is None and not (tmp_path / "s" / KEY_FILE).exists()
    with serve_in_thread(open_studio) as url:
        assert httpx.get(f"{url}/models").status_code == 200
        # Open, but still not to other web pages: a cross-site POST is refused.
        forged = httpx.post(f"{url}/fine_tuning/jobs", json={}, headers={"Origin": "http://evil.example"})
        assert forged.status_code == 403 and forged.json()["error"]["code"] == "cross_site_request"


def test_host_allow_list_and_cross_site_refusal(tmp_path, tiny_model_dir):
    studio = make(tmp_path / "s", tiny_model_dir, allow_hosts=["studio.team.example"])
    bearer = {"Authorization": f"Bearer {studio.api_key}"}
    with serve_in_thread(studio) as url:
        port = url.split(":")[2].split("/")[0]
        rebound = httpx.get(f"{url}/models", headers={**bearer, "Host": f"evil.example:{port}"})
        assert rebound.status_code == 400 and rebound.json()["error"]["code"] == "host_not_allowed"
        for host in (f"localhost:{port}", f"studio.team.example:{port}", f"127.0.0.1:{port}"):
            assert httpx.get(f"{url}/models", headers={**bearer, "Host": host}).status_code == 200, host
        cookie = {"Cookie": f"tunelab_key={studio.api_key}"}
        body = {"model": "nope", "training_file": "file-x"}
        for source in ({"Origin": "http://evil.example"}, {"Referer": "http://evil.example/page"}, {"Origin": "null"}):
            forged = httpx.post(f"{url}/fine_tuning/jobs", json=body, headers={**cookie, **source})
            assert forged.status_code == 403, source
        own = httpx.post(f"{url}/fine_tuning/jobs", json=body, headers={**cookie, "Origin": f"http://127.0.0.1:{port}"})
        assert own.status_code == 400 and own.json()["error"]["param"] == "model"  # reached the route
        api = httpx.post(f"{url}/fine_tuning/jobs", json=body, headers={**bearer, "Origin": "http://evil.example"})
        assert api.status_code == 400  # a Bearer-key client is not a browser page: not refused


def test_no_server_paths_and_errors_name_the_field(tmp_path, tiny_model_dir):
    models = tmp_path / "models"
    (models / "team").mkdir(parents=True)
    (models / "team" / "tiny").symlink_to(Path(tiny_model_dir), target_is_directory=True)
    studio = make(tmp_path / "s", tiny_model_dir, models_dir=models)
    key = studio.api_key
    with serve_in_thread(studio) as url:
        data = upload(url, key, "chats.jsonl", (CHAT + "\n").encode())
        accel = upload(url, key, "accel.yaml", b"distributed_type: MULTI_CPU\nnum_processes: 2\n")

        def create(**extra):
            body = {"model": "team/tiny", "training_file": data["id"], **extra}
            return httpx.post(f"{url}/fine_tuning/jobs", json=body, headers={"Authorization": f"Bearer {key}"})

        refused = {
            "model": create(model=str(models / "team" / "tiny")),  # a real model directory, named by path
            "tunelab.accelerate_config": create(tunelab={"accelerate_config": "/etc/passwd"}),
            "tunelab.config.bake.system_prompt_file": create(
                tunelab={"config": {"bake": {"system_prompt_file": "/etc/passwd"}}}
            ),
            "tunelab.config": create(tunelab={"config": "train: [unclosed"}),
            "hyperparameters.n_epochs": create(hyperparameters={"n_epochs": "3"}),
            "metadata": create(metadata=["not", "a", "mapping"]),
        }
        for param, answer in refused.items():
            error = answer.json()["error"]
            assert answer.status_code == 400 and error["param"] == param, (param, answer.text)
            assert "Error" not in error["message"].split(":")[0], error  # no exception class names
        data_as_accel = create(tunelab={"accelerate_config": data["id"]}).json()["error"]
        assert (
            data_as_accel["param"] == "tunelab.accelerate_config"
            and "not an accelerate config" in data_as_accel["message"]
        )

        job = create(tunelab={"accelerate_config": accel["id"]}, suffix="team").json()
        assert job["model"] == "team/tiny" and job["tunelab"]["status_text"] == "validating files"
        assert Path(job["tunelab"]["accelerate_config"]).read_text().startswith("distributed_type: MULTI_CPU")
        assert "team/tiny" in {
            m["id"] for m in httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {key}"}).json()["data"]
        }


def test_a_failed_training_names_no_python_exception(tmp_path):
    log = tmp_path / "train.log"
    log.write_text(
        "Traceback (most recent call last):\n  File x\nAttributeError: 'str' object has no attribute 'get'\n"
    )
    message = failure_message(log)
    assert "AttributeError" not in message and "internal error" in message and "train.log" in message
    log.write_text("loading\nerror: data.train: file:3: messages.1.role: must be 'assistant'\n")
    assert failure_message(log) == "data.train: file:3: messages.1.role: must be 'assistant'"
    log.write_text(
        "Traceback (most recent call last):\ntunelab.config.ConfigError: train.epoch: unknown key, did you mean epochs?\n"
    )
    assert failure_message(log) == "train.epoch: unknown key, did you mean epochs?"
