"""The core against the embedded local cluster: real HTTP, real S3, real scripts. No mocks."""

from __future__ import annotations

import hashlib
import json
import os

import httpx
import pytest

from oscar_plugins import (
    AuthenticationError,
    ConfigError,
    ConnectionFailed,
    Dispatcher,
    InputNotFound,
    JobFailed,
    JobSpec,
    JobState,
    JobTracker,
    Journal,
    OscarClient,
    OutputExists,
    ServiceNotFound,
    service_from_dict,
)
from oscar_plugins._auth import BasicCredentials
from oscar_plugins._dispatch import output_location
from oscar_plugins._fdl import SPEC_HASH_ANNOTATION
from oscar_plugins._profiles import ClusterProfile

COPY = 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH").out"; echo copied'


def _svc(name: str, script: str = COPY, **extra):
    return service_from_dict({
        "name": name, "image": "alpine", "script": script,
        "input": [{"storage_provider": "minio.default", "path": f"{name}/in"}],
        "output": [{"storage_provider": "minio.default", "path": f"{name}/out"}], **extra})


def test_info_version_and_storage(client, local_cluster):
    assert client.health()
    assert client.version == local_cluster.persona.version_tuple  # "4.1.2": OSCAR's version has no "v"
    assert client.storage.endpoint.startswith("http://127.0.0.1")
    assert "SENTINEL" not in repr(client)


def test_ensure_service_is_idempotent(client):
    first = client.ensure_service(_svc("idem"))
    assert first.token and len(first.token) == 64
    sent_before = client.requests_sent
    again = client.ensure_service(_svc("idem"))
    assert again.annotations[SPEC_HASH_ANNOTATION] == first.annotations[SPEC_HASH_ANNOTATION]
    assert client.requests_sent - sent_before == 1  # one GET, no PUT
    changed = client.ensure_service(_svc("idem", cpu="0.3"))
    assert changed.cpu == "0.3" and changed.annotations[SPEC_HASH_ANNOTATION] != first.annotations[SPEC_HASH_ANNOTATION]
    assert changed.script.startswith("#!/bin/sh\n# oscar-plugins wrapper v3")


def test_sync_run_single_file_zip_and_text(client, tmp_path):
    client.ensure_service(_svc("sync-one"))
    src = tmp_path / "in.txt"
    src.write_bytes(b"hello \xe2\x9c\x93 world")
    assert client.run("sync-one", src).data == b"hello \xe2\x9c\x93 world"
    client.ensure_service(_svc("sync-many", 'echo a > "$TMP_OUTPUT_DIR/a"; echo b > "$TMP_OUTPUT_DIR/b"'))
    res = client.run("sync-many", b"x", output=tmp_path / "many")
    assert sorted(p.name for p in res.paths) == ["a", "b"]
    client.ensure_service(_svc("sync-text", 'echo "got $(cat "$INPUT_FILE_PATH")"'))
    res = client.run("sync-text", {"Records": ["not", "an", "event"]})  # JSON with a reserved key, wrapped away
    assert res.kind == "text" and json.loads(res.text.removeprefix("got ").strip())["Records"]


@pytest.mark.parametrize("printed", ["no newline at the end", "two lines\nand the end\n", "blank end\n\n"])
def test_sync_run_text_comes_back_exactly_as_printed(client, printed):
    client.ensure_service(_svc("sync-exact", 'cat "$INPUT_FILE_PATH"'))
    assert client.run("sync-exact", printed, expect="text").text == printed


def test_sync_run_failure_carries_log(client):
    client.ensure_service(_svc("sync-fail", 'echo "bad things" >&2; exit 4'))
    with pytest.raises(JobFailed) as err:
        client.run("sync-fail", b"x")
    assert err.value.exit_code == 4 and "bad things" in err.value.log_tail


def test_sync_run_streams_large_input(client, tmp_path):
    client.ensure_service(_svc("sync-big", 'sha256sum "$INPUT_FILE_PATH" | cut -d" " -f1 > "$TMP_OUTPUT_DIR/sum"'))
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        for i in range(24):
            fh.write(bytes([i]) * (1 << 20))
    import hashlib

    res = client.run("sync-big", big)
    assert res.data.decode().strip() == hashlib.sha256(big.read_bytes()).hexdigest()


def test_sync_output_never_overwritten(client, tmp_path):
    client.ensure_service(_svc("sync-one"))
    target = tmp_path / "exists.txt"
    target.write_text("precious")
    with pytest.raises(OutputExists):
        client.run("sync-one", b"x", output=target)
    assert target.read_text() == "precious"


def test_async_jobs_map_with_staging_and_verification(client, tmp_path):
    client.ensure_service(_svc("async-map"))
    inputs = []
    for i in range(12):
        p = tmp_path / f"in-{i}.bin"
        # small ones in the body; 200 KB ones in a manifest the supervisor downloads; 2 MB ones staged once
        p.write_bytes(bytes([i]) * (100 if i % 2 else 200_000 if i % 4 else 2_000_000))
        inputs.append(p)
    d = Dispatcher(client)
    seen = []
    results = d.map("async-map", [[p] for p in inputs], tmp_path / "out", progress=lambda n, t: seen.append(n))
    assert all(r.ok for r in results), [str(r.error) for r in results if not r.ok]
    for r, p in zip(sorted(results, key=lambda r: r.index), inputs):
        (out,) = r.outputs
        assert out.read_bytes() == p.read_bytes() and out.parent.name == r.job.name
    assert seen[-1] == 12
    # Re-staging unchanged large inputs sends nothing (only the job's small manifest).
    before = client.storage.bytes_uploaded
    d.map("async-map", [[inputs[0]]], tmp_path / "out2")
    assert client.storage.bytes_uploaded - before < 10_000


def test_map_into_named_folders_reports_each_result_as_it_comes(client, tmp_path):
    client.ensure_service(_svc("async-folders"))
    inputs = [tmp_path / "x.txt", tmp_path / "y.txt"]
    for p in inputs:
        p.write_text(p.name)
    seen = []
    results = Dispatcher(client).map("async-folders", [[p] for p in inputs], tmp_path / "out",
                                     folders=["first", "second"], on_result=seen.append)
    assert all(r.ok for r in results), [str(r.error) for r in results if not r.ok]
    assert (tmp_path / "out" / "first" / "x.txt.out").read_text() == "x.txt"
    assert (tmp_path / "out" / "second" / "y.txt.out").read_text() == "y.txt"
    assert sorted(r.index for r in seen) == [0, 1] and all(r.ok for r in seen)
    with pytest.raises(ValueError, match="folders must be unique"):
        Dispatcher(client).map("async-folders", [[p] for p in inputs], tmp_path / "o", folders=["same", "same"])
    with pytest.raises(ValueError, match="give one per job"):
        Dispatcher(client).map("async-folders", [[p] for p in inputs], tmp_path / "o", folders=["one"])


def test_inputs_too_large_for_the_body_reach_the_script_through_the_supervisor(client, tmp_path):
    """A manifest that does not fit the pod's EVENT, or with inputs the image would have to download, is an
    object the supervisor downloads (a MinIO event body): no download tool needed; deleted with the outputs."""
    script = ('cat "$OSCAR_INPUTS_DIR"/* | sha256sum | cut -c1-64 > "$TMP_OUTPUT_DIR/sum"; '
              'printf %s "$BIG_VAR" | wc -c >> "$TMP_OUTPUT_DIR/sum"')
    client.ensure_service(_svc("async-event", script))
    inputs = []
    for i in range(3):
        inputs.append(tmp_path / f"part-{i}.bin")
        inputs[-1].write_bytes(os.urandom(150_000))
    d = Dispatcher(client)
    job = d.submit("async-event", inputs, env={"BIG_VAR": "v" * 100_000})
    assert job.manifest is not None and job.manifest.startswith("oscar-plugins/manifests/")
    d.tracker.wait([job], timeout=120)
    result = d.collect(job, tmp_path / "out")
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in inputs)).hexdigest()
    assert result.outputs[0].read_text().split() == [digest, "100000"]
    assert job.manifest in result.objects  # deleted with the job's outputs by whoever cleans them
    svc = client.get_service("async-event")
    assert client.storage.exists(output_location(svc).bucket, job.manifest) is not None


def test_async_failure_reports_exit_code_and_log(client, tmp_path):
    client.ensure_service(_svc("async-fail", 'echo "disk on fire" >&2; exit 3'))
    d = Dispatcher(client)
    (res,) = d.map("async-fail", [[]], tmp_path / "o")
    assert isinstance(res.error, JobFailed) and res.error.exit_code == 3
    assert "disk on fire" in res.error.log_tail


def test_tracker_one_listing_per_service(client):
    client.ensure_service(_svc("track", "sleep 0.2"))
    d = Dispatcher(client, tracker=JobTracker(client))
    jobs = [d.submit("track", payload=str(i), track=False) for i in range(30)]
    sent = client.requests_sent
    done = d.tracker.wait(jobs, timeout=120)
    assert all(j.state == JobState.SUCCEEDED for j in done)
    polls = d.tracker.polls
    assert client.requests_sent - sent <= polls * 2  # 30 jobs fit in one page: one request per poll


def test_a_poller_that_cannot_follow_a_job_fails_its_future(client, tmp_path):
    """A service deleted under its jobs: its job list answers 404, which no repeat can fix. The poller
    fails the waiting futures with that error (it does not keep polling, nor leave the error unread)."""
    client.ensure_service(_svc("vanishing", "sleep 60"))
    d = Dispatcher(client, tracker=JobTracker(client))
    job = d.submit("vanishing", payload="x")
    client.delete_service("vanishing")
    with pytest.raises(ServiceNotFound, match="vanishing"):
        job.future.result(timeout=60)
    assert isinstance(job.error, ServiceNotFound) and not d.tracker.pending()
    with pytest.raises(ServiceNotFound):
        d.collect(job, tmp_path / "out")


def test_submit_all_is_all_or_nothing(client, tmp_path):
    client.ensure_service(_svc("allornot", "sleep 30"))
    d = Dispatcher(client)
    good = tmp_path / "good.txt"
    good.write_text("x")
    jobs = d.submit_all("allornot", [JobSpec([good]), JobSpec([good])], track=False)
    assert {j.name for j in jobs} <= set(client.list_jobs("allornot"))
    d.cancel(jobs)
    names = [f"allornot-named-{i}" for i in range(4)]
    specs = [JobSpec([good]), JobSpec([good]), JobSpec([tmp_path / "missing.txt"]), JobSpec([good])]
    with pytest.raises(InputNotFound, match=r"missing\.txt"):
        d.submit_all("allornot", specs, names, track=False)
    assert not set(names) & set(client.list_jobs("allornot"))  # the ones that went out were cancelled


def test_collect_all_gives_each_jobs_outputs_log_or_error(client, tmp_path):
    script = 'grep -q good "$INPUT_FILE_PATH" && cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/out"'
    client.ensure_service(_svc("collectall", script))
    d = Dispatcher(client)
    (tmp_path / "good.txt").write_text("good")
    (tmp_path / "bad.txt").write_text("bad")
    jobs = d.submit_all("collectall", [JobSpec([tmp_path / "good.txt"]), JobSpec([tmp_path / "bad.txt"])])
    d.tracker.wait(jobs, timeout=120)
    ok, failed = d.collect_all(jobs, [tmp_path / "o1", tmp_path / "o2"], logs=True)
    assert ok.ok and [p.name for p in ok.outputs] == ["out"] and (tmp_path / "o1" / "out").read_text() == "good"
    assert isinstance(failed.error, JobFailed) and failed.exit_code == 1 and not failed.outputs
    assert ok.log is not None and failed.log is not None  # the cluster's job logs (the supervisor's, in a pod)


def test_cancel_deletes_running_job(client):
    client.ensure_service(_svc("slow", "sleep 60"))
    d = Dispatcher(client)
    job = d.submit("slow", payload="x")
    d.cancel([job])
    assert job.name not in client.list_jobs("slow")


def test_journal_reattaches_without_resubmitting(client, tmp_path):
    client.ensure_service(_svc("journal"))
    inp = tmp_path / "a.txt"
    inp.write_text("data")
    journal = Journal(tmp_path / "j.sqlite")
    batch = journal.batch("key-1", client.profile.endpoint, "journal")
    # A previous process recorded and submitted job 0, then died before collecting it (before v4.1 the
    # server names the job, and the journal records the name it gave).
    name = Dispatcher(client).submit("journal", [inp], name="journal-previous-run-0", track=False).name
    batch.record(0, name)
    results = Dispatcher(client).map("journal", [[inp]], tmp_path / "o", journal=journal, batch_key="key-1")
    assert results[0].ok and results[0].job.name == name
    assert [n for n in client.list_jobs("journal") if n == name] == [name] and len(client.list_jobs("journal")) == 1
    assert journal.batch("key-1", "", "").names() == {}  # the completed batch is forgotten


def test_a_rerun_submits_again_what_failed_and_reattaches_the_rest(client, tmp_path):
    """The journal remembers every job of a batch; a rerun reattaches to those that run or ran well, and
    submits again (under a new name) those that failed, instead of reporting the old failure."""
    script = 'grep -q good "$INPUT_FILE_PATH" && cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/out"'
    client.ensure_service(_svc("rerun", script))
    journal = Journal(tmp_path / "j.sqlite")
    good, flaky = tmp_path / "good.txt", tmp_path / "flaky.txt"
    good.write_text("good")
    flaky.write_text("bad")
    first = Dispatcher(client).map("rerun", [[good], [flaky]], tmp_path / "o", journal=journal, batch_key="k")
    assert first[0].ok and not first[1].ok
    flaky.write_text("good now")  # the cause is fixed; the batch key stays the caller's
    again = Dispatcher(client).map("rerun", [[good], [flaky]], tmp_path / "o", journal=journal, batch_key="k")
    assert again[1].ok and again[1].job is not None and again[1].job.name != first[1].job.name
    assert again[0].ok  # collected by the first run: not submitted again
    assert len(client.list_jobs("rerun")) == 3


def test_bad_inputs_have_clear_errors(client, tmp_path, profile):
    with pytest.raises(ServiceNotFound, match="deploy it first"):
        client.get_service("does-not-exist")
    client.ensure_service(_svc("async-map"))
    with pytest.raises(InputNotFound, match="does not exist"):
        Dispatcher(client).submit("async-map", [tmp_path / "missing.txt"])
    wrong = ClusterProfile("bad", profile.endpoint, BasicCredentials("oscar", "SENTINEL-WRONG"), ssl_verify=False)
    with OscarClient(wrong) as bad, pytest.raises(AuthenticationError) as err:
        bad.list_services()
    assert "SENTINEL" not in str(err.value) and "credentials" in str(err.value)
    nowhere = ClusterProfile("gone", "http://127.0.0.1:9", BasicCredentials("u", "p"), ssl_verify=False)
    with OscarClient(nowhere, retries=0) as gone, pytest.raises(ConnectionFailed, match="cannot reach"):
        gone.info()
    a = tmp_path / "x" / "same.txt"
    b = tmp_path / "y" / "same.txt"
    for p in (a, b):
        p.parent.mkdir()
        p.write_text("1")
    with pytest.raises(ConfigError, match="distinct names"):
        Dispatcher(client).submit("async-map", [a, b])


def test_official_job_shape_and_raw_api(client, local_cluster):
    """The library's view agrees with the raw API: the job list of OSCAR >= 3.6.4, or the bare map before."""
    client.ensure_service(_svc("raw"))
    job = Dispatcher(client).submit("raw", payload="x", name="raw-job-1", track=False)
    Dispatcher(client).tracker.wait([job], timeout=60)
    body = httpx.get(f"{local_cluster.endpoint}/system/logs/raw",
                     auth=(local_cluster.username, local_cluster.password)).json()
    jobs = body["jobs"] if local_cluster.persona.paged_job_list else body
    assert job.name in jobs and set(jobs[job.name]) >= {"status", "creation_time"}
    assert client.list_jobs("raw")[job.name]["status"] == "Succeeded"


def test_duplicate_job_name_is_a_conflict_not_a_silent_reuse(client):
    from oscar_plugins import Conflict

    client.ensure_service(_svc("dupname"))
    first = Dispatcher(client).submit("dupname", payload="a", name="dupname-fixed-1", track=False)
    if client.version < (4, 1, 0):  # no X-Delegated-Job-ID: the server names every job itself
        second = Dispatcher(client).submit("dupname", payload="b", name="dupname-fixed-1", track=False)
        assert first.name != second.name and "dupname-fixed-1" not in (first.name, second.name)
        return
    with pytest.raises(Conflict, match="already exists"):
        Dispatcher(client).submit("dupname", payload="b", name="dupname-fixed-1", track=False)
