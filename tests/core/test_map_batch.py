"""``Dispatcher.map(..., batch=N)`` against the embedded local cluster: several specs in one OSCAR job, each
reported as if it had been its own (real HTTP, real S3, the real wrapper run by /bin/sh)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from oscar_plugins import Dispatcher, JobFailed, JobSpec, JobTracker, Journal, service_from_dict
from oscar_plugins._wrapper import wrapper_version

#: Every spec writes the same file names; a spec whose FAIL is set fails after writing one.
SCRIPT = """\
echo "spec ${LABEL:-none} reads $(basename "$INPUT_FILE_PATH")"
mkdir -p "$TMP_OUTPUT_DIR/sub"
{ cat "$INPUT_FILE_PATH"; echo " label=${LABEL:-}"; } > "$TMP_OUTPUT_DIR/out.txt"
[ -n "${OSCAR_INPUTS_DIR:-}" ] && ls "$OSCAR_INPUTS_DIR" > "$TMP_OUTPUT_DIR/sub/names.txt"
if [ -n "${FAIL:-}" ]; then echo "member $LABEL: disk on fire" >&2; exit 3; fi
exit 0
"""
OLD_WRAPPER = Path(__file__).parent / "data" / "wrapper-v2.sh"


def _svc(name: str, script: str = SCRIPT):
    return service_from_dict({
        "name": name, "image": "alpine", "script": script,
        "input": [{"storage_provider": "minio.default", "path": f"{name}/in"}],
        "output": [{"storage_provider": "minio.default", "path": f"{name}/out"}]})


def _specs(tmp_path: Path, n: int = 7, fail: int | None = None) -> list[JobSpec]:
    """Files, two files, a payload alone, variables: what one job can get, one kind after the other."""
    specs = []
    for i in range(n):
        folder = tmp_path / "in" / str(i)
        folder.mkdir(parents=True, exist_ok=True)
        env = {"LABEL": str(i), **({"FAIL": "1"} if i == fail else {})}
        if i % 3 == 2:
            specs.append(JobSpec(payload=f"payload {i}", env=env))
            continue
        (folder / "in.txt").write_text(f"input {i}")
        extra = [folder / "second.txt"] if i % 3 == 1 else []
        for path in extra:
            path.write_text("second")
        specs.append(JobSpec([folder / "in.txt", *extra], env=env))
    return specs


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_batched_results_are_those_of_one_job_per_spec(client, tmp_path):
    client.ensure_service(_svc("mb-same"))
    specs = _specs(tmp_path)
    folders = [f"spec{i}" for i in range(len(specs))]
    d = Dispatcher(client)
    alone = d.map("mb-same", specs, tmp_path / "alone", folders=folders)
    jobs_before = len(client.list_jobs("mb-same"))
    seen: list[int] = []
    reported: list[int] = []
    batched = d.map("mb-same", specs, tmp_path / "batched", folders=folders, batch=3,
                    progress=lambda n, total: seen.append(n), on_result=lambda r: reported.append(r.index))
    assert len(client.list_jobs("mb-same")) - jobs_before == 3  # 7 specs, 3 a job: 3 OSCAR jobs
    assert [r.index for r in batched] == list(range(7)) and all(r.ok for r in batched)
    assert sorted(reported) == list(range(7)) and seen[-1] == 7  # specs, not jobs
    for one, many in zip(alone, batched, strict=True):
        assert many.exit_code == one.exit_code == 0
        assert _tree(tmp_path / "batched" / folders[many.index]) == _tree(tmp_path / "alone" / folders[one.index])
        assert [p.name for p in many.outputs] == [p.name for p in one.outputs]
    assert (tmp_path / "batched/spec4/out.txt").read_text() == "input 4 label=4\n"  # same names, no clash
    assert (tmp_path / "batched/spec5/out.txt").read_text() == "payload 5 label=5\n"
    assert (tmp_path / "batched/spec4/sub/names.txt").read_text() == "in.txt\nsecond.txt\n"
    assert [r.member for r in batched] == [0, 1, 2, 0, 1, 2, 0]
    assert len({r.job.name for r in batched if r.job}) == 3


def test_without_folders_each_member_has_a_folder_of_its_own(client, tmp_path):
    client.ensure_service(_svc("mb-default"))
    results = Dispatcher(client).map("mb-default", _specs(tmp_path, 2), tmp_path / "o", batch=2)
    assert results[0].job is results[1].job  # one OSCAR job
    name = results[0].job.name
    for k in (0, 1):
        assert tmp_path / "o" / name / f"member-{k}" / "out.txt" in results[k].outputs


def test_a_failing_member_fails_alone_with_its_own_log(client, tmp_path):
    client.ensure_service(_svc("mb-fail"))
    results = Dispatcher(client).map("mb-fail", _specs(tmp_path, 4, fail=1), tmp_path / "o", batch=4)
    assert [r.ok for r in results] == [True, False, True, True]
    failed = results[1]
    assert isinstance(failed.error, JobFailed) and failed.exit_code == 3 and failed.member == 1
    message = str(failed.error)
    assert "batch member 1" in message and "exited with code 3" in message
    assert "member 1: disk on fire" in message and "member 0" not in failed.error.log_tail
    assert (tmp_path / "o" / results[2].job.name / "member-2" / "out.txt").read_text() == "payload 2 label=2\n"


def test_a_rerun_collects_only_what_is_missing_and_loses_nothing(client, tmp_path):
    """A process submitted a batch of two and collected its first member, then died before the second, and
    before submitting the rest: the rerun reattaches to that job for the second and submits the rest."""
    client.ensure_service(_svc("mb-resume"))
    specs = _specs(tmp_path, 5)
    folders = [f"s{i}" for i in range(5)]
    journal = Journal(tmp_path / "j.sqlite")
    entry = journal.batch("key", client.profile.endpoint, "mb-resume")
    d = Dispatcher(client)
    for k, idx in enumerate((0, 1)):
        entry.record(idx, "mb-resume-earlier-run", k)
    job = d.submit_batch("mb-resume", specs[:2], name="mb-resume-earlier-run")
    for k, idx in enumerate((0, 1)):  # before v4.1 the server names the job itself: recorded again, as map does
        entry.record(idx, job.name, k)
    job.future.result(timeout=60)
    (first,) = d.collect_members(job, {0: tmp_path / "o" / "s0"}).values()
    entry.mark_collected(0, [str(p) for p in first.outputs])
    entry.record(2, "mb-resume-never-submitted", 0)  # recorded, then the process died before the submit
    results = d.map("mb-resume", specs, tmp_path / "o", journal=journal, batch_key="key", batch=2, folders=folders)
    assert [r.index for r in results] == list(range(5)) and all(r.ok for r in results)
    assert results[0].job is None  # collected by the earlier run: not redone
    assert results[1].job is not None and results[1].job.name == job.name and results[1].member == 1
    assert len(client.list_jobs("mb-resume")) == 3  # the earlier job, then specs 2-3 and 4
    for i in range(5):
        assert (tmp_path / "o" / f"s{i}" / "out.txt").is_file()
    assert journal.batch("key", "", "").members() == {}  # done: forgotten


def test_a_service_with_an_older_wrapper_runs_one_job_per_spec(client, tmp_path, caplog):
    old = OLD_WRAPPER.read_text().replace("@@USER_SCRIPT@@", SCRIPT.rstrip("\n"), 1)
    old = old.replace("@@PREFIXES@@", "", 1).replace("@@SUFFIXES@@", "", 1)
    svc = client.ensure_service(_svc("mb-old", old))
    assert wrapper_version(svc.script) == 2
    d = Dispatcher(client)
    with caplog.at_level(logging.WARNING, logger="oscar_plugins"):
        results = d.map("mb-old", _specs(tmp_path, 3), tmp_path / "o", batch=3)
    assert all(r.ok for r in results) and len(client.list_jobs("mb-old")) == 3
    assert "wrapper v2" in caplog.text and "redeploy" in caplog.text
    # Sent a batch anyway, the old wrapper runs the script once on the manifest: no member is collected.
    job = d.submit_batch("mb-old", _specs(tmp_path / "again", 2))
    job.future.result(timeout=60)
    members = d.collect_members(job, {0: tmp_path / "x0", 1: tmp_path / "x1"})
    assert all(not r.ok and "no section for it" in str(r.error) for r in members.values())
    assert not (tmp_path / "x0").exists()


@pytest.mark.parametrize("bad", [0, -2, 2.5, "4", True, None])
def test_batch_must_be_a_whole_number_of_at_least_one(client, tmp_path, bad):
    client.ensure_service(_svc("mb-same"))
    with pytest.raises(ValueError, match=r"batch=.*(whole number|too small)"):
        Dispatcher(client).map("mb-same", _specs(tmp_path, 2), tmp_path / "o", batch=bad)


def test_a_journal_from_before_batches_is_read_and_its_jobs_reattached(client, tmp_path):
    """A journal file written before batches (no member column) gains it; its jobs of their own reattach
    in a batched rerun, and the specs it never recorded go in a new batch."""
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE batch (key TEXT PRIMARY KEY, cluster TEXT, service TEXT, created REAL)")
        db.execute("CREATE TABLE job (key TEXT, idx INT, name TEXT, collected INT DEFAULT 0, outputs TEXT, "
                   "PRIMARY KEY (key, idx))")
    client.ensure_service(_svc("mb-legacy"))
    specs = _specs(tmp_path, 3)
    d = Dispatcher(client)
    journal = Journal(path)
    name = d.submit("mb-legacy", specs[0].inputs, env=specs[0].env, name="mb-legacy-alone", track=False).name
    journal.batch("old", client.profile.endpoint, "mb-legacy").record(0, name)
    assert journal.batch("old", "", "").members() == {0: (name, None)}
    results = d.map("mb-legacy", specs, tmp_path / "o", journal=journal, batch_key="old", batch=2,
                    folders=["a", "b", "c"])
    assert all(r.ok for r in results) and results[0].job.name == name and results[0].member is None
    assert results[1].job is results[2].job and len(client.list_jobs("mb-legacy")) == 2
    assert (tmp_path / "o" / "a" / "out.txt").read_text() == "input 0 label=0\n"


def test_retries_resubmit_the_members_of_a_lost_job_not_those_that_failed_by_themselves(client, tmp_path):
    import threading

    marker = tmp_path / "first-attempt"
    script = f"[ -e {marker} ] || {{ touch {marker}; sleep 10; }}\n" + SCRIPT
    client.ensure_service(_svc("mb-retry", script))
    d = Dispatcher(client, tracker=JobTracker(client, lost_after=1.0))  # gone from the listing: lost at once

    def lose_the_first_job() -> None:  # the job disappears from the cluster while it runs (deleted, evicted)
        for _ in range(600):
            if marker.exists():
                for name in client.list_jobs("mb-retry"):
                    client.delete_job("mb-retry", name)
                return
            threading.Event().wait(0.05)

    thread = threading.Thread(target=lose_the_first_job, daemon=True)
    thread.start()
    results = d.map("mb-retry", _specs(tmp_path, 3, fail=2), tmp_path / "o", batch=3, retries=1)
    thread.join(timeout=5)
    assert [r.ok for r in results] == [True, True, False] and results[2].exit_code == 3
    assert results[0].job is results[2].job and len(client.list_jobs("mb-retry")) == 1  # the lost one is gone
