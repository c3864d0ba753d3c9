"""The studio against its own OpenAPI schema (schemathesis 4, every check, positive and negative
requests), a real uvicorn on 127.0.0.1: no 5xx, every status documented with OpenAI's error
body, 405 with the right Allow. The runner and the evaluation queue are not started, so no
created job trains and no evaluation runs.

Left out of the generated requests: /v1/chat/completions (loads a model per case; the same route
is run through schemathesis by test_serve_schema.py) and the SSE stream (it stays open while its
job lives)."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tunelab.studio.app import Studio, serve_in_thread

KEY = "schema-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
LEFT_OUT = {("POST", "/v1/chat/completions"), ("GET", "/v1/fine_tuning/jobs/{job_id}/stream")}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("studio")
    studio = Studio(folder, api_key=KEY, base_models=[tiny_model_dir], tokenizer_model=tiny_model_dir, max_upload_mb=1)
    with serve_in_thread(studio) as url:
        yield url.removesuffix("/v1")
    studio.close()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_studio_keeps_its_schema(server, mode):
    api_schema = schemathesis.openapi.from_url(f"{server}/openapi.json", headers=AUTH)
    operations = [
        op for op in (r.ok() for r in api_schema.get_all_operations()) if (op.method.upper(), op.path) not in LEFT_OUT
    ]
    assert {("POST", "/v1/fine_tuning/jobs"), ("POST", "/v1/studio/evaluations")} <= {
        (op.method.upper(), op.path) for op in operations
    }
    seen: set[int] = set()

    @given(st.sampled_from(operations).flatmap(lambda op: op.as_strategy(generation_mode=mode)))
    @settings(max_examples=150, phases=[Phase.generate], deadline=None)
    def run(case):
        # Every check but positive_data_acceptance: a schema cannot say which file and job ids
        # exist, so schema-valid requests naming made-up ids get the documented 404.
        response = case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])
        seen.add(response.status_code)

    run()
    print(f"{mode.value}: statuses seen {sorted(seen)}")
    assert max(seen) < 500 and (400 in seen if mode is GenerationMode.NEGATIVE else 200 in seen)


def test_every_files_and_jobs_route_documents_its_body_and_errors(server):
    spec = httpx.get(f"{server}/openapi.json", headers=AUTH).json()
    paths = spec["paths"]
    upload = paths["/v1/files"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"400", "401", "403", "413", "415"} <= set(upload["responses"])
    create = paths["/v1/fine_tuning/jobs"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobRequest"}
    assert {"400", "401", "403", "404", "413"} <= set(create["responses"]) and "422" not in create["responses"]
    assert "409" in paths["/v1/fine_tuning/jobs/{job_id}/cancel"]["post"]["responses"]
    evaluate = paths["/v1/studio/evaluations"]["post"]
    assert evaluate["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EvaluationRequest"
    }
    assert {"400", "401", "403", "404", "409"} <= set(evaluate["responses"]) and "422" not in evaluate["responses"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status != "200":
                    assert answer["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorResponse"
                    }, (method, path, status)


def test_405_names_every_method_of_the_path(server):
    for path, allow in (
        ("/v1/files", "GET, POST"),
        ("/v1/files/file-x", "DELETE, GET"),
        ("/v1/fine_tuning/jobs", "GET, POST"),
        ("/v1/studio/evaluations", "GET, POST"),
    ):
        answer = httpx.put(f"{server}{path}", headers=AUTH)
        assert answer.status_code == 405 and answer.headers["allow"] == allow and answer.json()["error"]["message"]
