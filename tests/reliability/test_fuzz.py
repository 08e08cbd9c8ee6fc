"""Property-based fuzzing of the local cluster from OSCAR's own spec (schemathesis, Swagger 2.0).

Every operation of swagger-v4.1.2.yaml gets generated requests (valid and invalid). The cluster must
answer 5xx only where OSCAR's Go code does, must keep its stored state, and must write nothing outside
its data directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oscar_plugins.local import LocalCluster

SPEC = Path(__file__).resolve().parents[3] / "shared" / "oscar-api" / "swagger-v4.1.2.yaml"
EXAMPLES = int(os.environ.get("OSCAR_FUZZ_EXAMPLES", "15"))
if not SPEC.is_file():
    pytest.skip(f"OSCAR's spec is not at {SPEC} (../shared beside the repository)", allow_module_level=True)
SCHEMA = schemathesis.openapi.from_path(SPEC)
OPERATIONS = [r.ok() for r in SCHEMA.get_all_operations()]
# Where OSCAR's own code answers 500 (the Go function, then what its body starts with); anything else is a bug.
GO_500 = {
    ("POST", "/job/{serviceName}"): ("",),  # job.go: Kubernetes refuses the Job (a duplicate or invalid name)
    ("POST", "/run/{serviceName}"): ("",),  # run.go: the supervisor failed ("exit status 1")
    # create.go MakeCreateHandler: Kubernetes or MinIO refuse what ShouldBindJSON accepted
    ("POST", "/system/services"): ("Error creating the service:", "error creating bucket"),
    ("GET", "/system/logs/{serviceName}/{jobName}"): ("",),  # logs.go MakeGetLogsHandler: unknown job, nil deref
    ("GET", "/system/logs/{serviceName}"): ("continue key is not valid", "The provided continue parameter"),
}


def go_answers_500(method: str, path: str, body: str) -> bool:
    return any(body.startswith(prefix) for prefix in GO_500.get((method, path), ()))


@pytest.fixture(scope="module")
def fuzz_cluster(tmp_path_factory):
    parent = tmp_path_factory.mktemp("fuzz")
    with LocalCluster(data_dir=parent / "data", port=0, cpus=1.0) as lc:
        session = requests.Session()
        session.auth = (lc.username, lc.password)
        canary = {"name": "canary", "image": "alpine", "script": "true",
                  "environment": {"variables": {"KEEP": "me"}}}
        assert session.post(f"{lc.endpoint}/system/services", json=canary).status_code == 201
        yield lc, session, parent
        # The stored state survived: the canary is intact.
        got = session.get(f"{lc.endpoint}/system/services/canary").json()
        assert got["image"] == "alpine" and got["environment"]["variables"] == {"KEEP": "me"}
    assert sorted(p.name for p in parent.iterdir()) == ["data"]  # nothing written beside the data dir


@pytest.mark.parametrize("operation", OPERATIONS, ids=[f"{o.method.upper()} {o.path}" for o in OPERATIONS])
def test_no_server_errors(fuzz_cluster, operation):
    lc, session, _ = fuzz_cluster
    strategy = operation.as_strategy()
    if operation.method.upper() != "GET":
        negative = operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE)
        strategy = st.one_of(strategy, negative)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck), database=None)
    @given(case=strategy)
    def check(case):
        if case.path_parameters and case.path_parameters.get("serviceName") == "canary" \
                and case.method.upper() in {"DELETE", "PUT"}:
            return  # the canary measures state corruption; deleting it on purpose is not corruption
        response = case.call(base_url=lc.endpoint, session=session, timeout=30)
        assert response.status_code < 500 or go_answers_500(case.method.upper(), operation.path, response.text), (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}")

    check()
