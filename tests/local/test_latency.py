"""The latency model (benchmarks only): presets and files, pod start and capacity, API and S3 round trips.

Delays are checked from the cluster's pod records and as lower bounds, never as tight timings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oscar_plugins.local import LocalCluster
from oscar_plugins.local._latency import (
    ENV_LATENCY,
    PRESETS,
    LatencyModel,
    PodStart,
    ideal_makespan,
    load_latency_model,
    read_pod_records,
    resolve_latency_model,
)
from oscar_plugins.local.cli import _serve_args, add_local_commands
from tests.local.local_helpers import FINISHED, Api, wait_for


# -- the model, pure ------------------------------------------------------------------------------------
def test_presets_and_none() -> None:
    cloud = load_latency_model("cloud")
    assert cloud is PRESETS["cloud"]
    assert (cloud.pod_start.distribution, cloud.pod_start.median, cloud.max_pods) == ("lognormal", 2.0, 32)
    assert cloud.api_rtt > 0 and cloud.s3_link
    assert load_latency_model(None) is None and load_latency_model("none") is None and load_latency_model("") is None


def test_file_overrides_a_preset(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text("preset: cloud\npod_start: 2\nmax_pods: 8\ns3_bandwidth: 10Mi\napi_rtt: 0.05\n")
    model = load_latency_model(str(path))
    assert model is not None
    assert model.pod_start == PodStart("constant", 2.0, 0.0, 30.0)
    assert (model.max_pods, model.s3_bandwidth, model.api_rtt) == (8, 10 * 2**20, 0.05)
    assert model.s3_rtt == PRESETS["cloud"].s3_rtt and model.name == "model.yaml"
    path.write_text('{"pod_start": {"median": 1.5, "sigma": 0.2}}')
    model = load_latency_model(path)
    assert model is not None and model.pod_start == PodStart("lognormal", 1.5, 0.2, 30.0)


@pytest.mark.parametrize(("text", "words"), [
    ("pod_starts: 2\n", "unknown latency model field(s) pod_starts"),
    ("pod_start: {distribution: gamma}\n", "not one of constant, lognormal"),
    ("max_pods: 0\n", "max_pods must be >= 1"),
    ("api_rtt: -1\n", "api_rtt and s3_rtt must be >= 0"),
    ("- 1\n", "must be a mapping"),
])
def test_bad_files_say_what_is_wrong(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_latency_model(path)


def test_unknown_preset_names_the_presets() -> None:
    with pytest.raises(ValueError, match="no latency preset 'clod': use one of cloud, lan"):
        load_latency_model("clod")


def test_argument_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_LATENCY, "lan")
    assert resolve_latency_model(None) is PRESETS["lan"]
    assert resolve_latency_model("cloud") is PRESETS["cloud"]
    monkeypatch.delenv(ENV_LATENCY)
    assert resolve_latency_model(None) is None


def test_draws_follow_the_distribution_and_the_seed() -> None:
    model = LatencyModel(PodStart("lognormal", 2.0, 0.4, 30.0), seed=3)
    draws = model.draws(2000)
    assert draws == model.draws(2000)  # the k-th admitted job gets the k-th draw
    assert 1.8 < statistics.median(draws) < 2.2
    assert 3.8 < sorted(draws)[int(0.99 * len(draws))] < 6.5  # p99 about the SLO's 5 s
    capped = LatencyModel(PodStart("lognormal", 2.0, 3.0, 4.0), seed=3).draws(500)
    assert max(capped) == 4.0
    assert LatencyModel(PodStart("constant", 1.5, 0.0, 30.0)).draws(3) == [1.5, 1.5, 1.5]


def test_ideal_makespan_is_fifo_list_scheduling() -> None:
    assert ideal_makespan([1.0] * 10, 5) == 2.0
    assert ideal_makespan([3.0, 1.0, 1.0, 1.0], 2) == 3.0
    assert ideal_makespan([1.0, 1.0, 3.0], 2) == 4.0  # FIFO: the long job starts when a slot frees
    assert ideal_makespan([], 4) == 0.0


def test_cli_passes_the_model_to_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_local_commands(parser.add_subparsers())
    model = tmp_path / "m.yaml"
    model.write_text("pod_start: 1\n")
    monkeypatch.chdir(tmp_path)
    args = parser.parse_args(["local", "up", "--latency-model", "m.yaml"])
    assert _serve_args(args)[-2:] == ["--latency-model", str(model)]
    assert _serve_args(parser.parse_args(["local", "up", "--latency-model", "cloud"]))[-2:] == [
        "--latency-model", "cloud"]


# -- a cluster under a model ----------------------------------------------------------------------------
DELAY, PODS, API_RTT, S3_RTT, BANDWIDTH = 0.5, 2, 0.05, 0.04, 4 * 2**20


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    model = {"pod_start": DELAY, "max_pods": PODS, "api_rtt": API_RTT, "s3_rtt": S3_RTT, "s3_bandwidth": BANDWIDTH,
             "seed": 1}
    with LocalCluster(data_dir=tmp_path_factory.mktemp("latency"), cpus=2, memory=4 << 30, latency=model) as lc:
        yield lc


def test_pods_start_late_and_at_most_max_pods_run(slow: LocalCluster) -> None:
    api = Api(slow)
    try:
        svc = api.create("sleep 0.2\n", cpu="0.1", memory="64Mi")
        names = [f"lat-{i}" for i in range(6)]
        for name in names:
            assert api.job(svc, name=name).status_code == 201
        wait_for(lambda: all(api.status_of(svc["name"], n) in FINISHED for n in names), timeout=60)
        assert {api.status_of(svc["name"], n) for n in names} == {"Succeeded"}
    finally:
        api.close()
    pods = [p for p in read_pod_records(slow.data_dir) if p.job in names]
    assert sorted(p.job for p in pods) == names
    for pod in pods:
        assert pod.delay == DELAY and pod.running - pod.admitted >= DELAY
    events = sorted([(p.admitted, 1) for p in pods] + [(p.ended, -1) for p in pods], key=lambda e: (e[0], e[1]))
    held, most = 0, 0
    for _, change in events:
        held += change
        most = max(most, held)
    assert most == PODS  # the cap was reached and never passed


def test_api_requests_pay_a_round_trip_health_does_not(slow: LocalCluster) -> None:
    api = Api(slow)
    try:
        t0 = time.perf_counter()
        for _ in range(3):
            assert api.admin.get("/system/info").status_code == 200
        assert time.perf_counter() - t0 >= 3 * API_RTT
    finally:
        api.close()


def test_s3_goes_through_a_link_with_the_same_semantics(slow: LocalCluster) -> None:
    direct = slow._s3.endpoint if slow._s3 is not None else ""
    assert slow.s3_endpoint != direct and slow.info().s3_endpoint == slow.s3_endpoint
    api = Api(slow)
    try:
        config = api.admin.get("/system/config").json()
        assert config["minio_provider"]["endpoint"] == slow.s3_endpoint  # what users are told
        api.s3.create_bucket(Bucket="lat-bucket")
        body = os.urandom(2 << 20)
        t0 = time.perf_counter()
        put = api.s3.put_object(Bucket="lat-bucket", Key="a/b.bin", Body=body)
        sent = time.perf_counter() - t0
        got = api.s3.get_object(Bucket="lat-bucket", Key="a/b.bin")
        assert got["Body"].read() == body and got["ETag"] == put["ETag"]
        listed = api.s3.list_objects_v2(Bucket="lat-bucket", Prefix="a/")
        assert [o["Key"] for o in listed["Contents"]] == ["a/b.bin"]
        assert sent >= 0.8 * len(body) / BANDWIDTH  # 2 MiB over a 4 MiB/s link: at least about 0.5 s
        t0 = time.perf_counter()
        api.s3.head_object(Bucket="lat-bucket", Key="a/b.bin")
        assert time.perf_counter() - t0 >= S3_RTT
    finally:
        api.close()
