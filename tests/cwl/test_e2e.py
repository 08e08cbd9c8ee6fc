"""oscar-cwl end to end on the embedded local cluster, compared with plain ``cwltool --no-container``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.catalogue import expect

from .conftest import BIN, DATA, normalize

pytestmark = pytest.mark.slow


def _same_as_cwltool(oscar_cwl, cwltool, *args: str) -> dict:
    ours = oscar_cwl(*args)
    ref = cwltool(*args)
    assert ref.code == 0, ref.stderr
    assert ours.code == 0, ours.stderr
    assert "submitted to OSCAR" in ours.stderr
    assert normalize(ours.out) == normalize(ref.out)
    return ours.out


def test_scatter_branches_keep_their_own_outputs(oscar_cwl, cwltool):
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    out = _same_as_cwltool(oscar_cwl, cwltool, "scatter-wf.cwl", *[a for w in words for a in ("--items", w)])
    contents = [Path(f["path"]).read_text() for f in out["results"]]
    assert contents == [w.upper() + "\n" for w in words]  # every branch wrote out.txt, none overwrote another


def test_finished_jobs_leave_no_outputs_behind(oscar_cwl, client):
    def job_objects() -> set[str]:
        found = set()
        for svc in client.list_services():
            for out in svc.output:
                prefix = out.folder + "/" if out.folder else ""
                found |= {f"{out.bucket}/{o.key}" for o in client.storage.list(out.bucket, prefix)
                          if not o.key.endswith("/")}
        return found

    before = job_objects()
    run = oscar_cwl("scatter-wf.cwl", "--items", "one", "--items", "two", "--items", "three")
    assert run.code == 0, run.stderr
    assert "submitted to OSCAR" in run.stderr
    assert job_objects() - before == set()  # the janitor deleted every object the jobs wrote


def test_stdout_and_stderr_are_kept_apart(oscar_cwl, cwltool):
    out = _same_as_cwltool(oscar_cwl, cwltool, "streams.cwl", "--text", "hello")
    assert Path(out["out"]["path"]).read_text() == "out:hello\n"
    assert Path(out["err"]["path"]).read_text() == "err:hello\n"
    assert out["where"] is True  # $(runtime.outdir) is the working directory in the pod


def test_env_var_requirement_with_expressions(oscar_cwl, cwltool):
    out = _same_as_cwltool(oscar_cwl, cwltool, "env.cwl", "--name", "world")
    lines = Path(out["out"]["path"]).read_text().splitlines()
    assert lines[0] == "hello world" and lines[-2:] == ["home-ok", "tmp-ok"]


def test_initial_workdir_expressions_are_evaluated(oscar_cwl, cwltool):
    out = _same_as_cwltool(oscar_cwl, cwltool, "iwd.cwl", "--name", "cfg", "--count", "21", "--data", "data.txt",
                           "--extra", "extra.txt")
    assert Path(out["conf"]["path"]).read_text() == "name=cfg\ncount=42\n"
    assert Path(out["writable"]["path"]).read_text() == "first line\nappended\n"
    assert (DATA / "extra.txt").read_text() == "first line\n"  # a writable copy, not the original


def test_directories_in_and_out(oscar_cwl, cwltool):
    out = _same_as_cwltool(oscar_cwl, cwltool, "dir.cwl", "--dir", "indir")
    result = Path(out["result"]["path"])
    assert (result / "listing.txt").read_text() == "./a.txt\n./sub/b.txt\n"
    assert (result / "empty").is_dir() and (result / "link.txt").is_symlink()


@pytest.mark.parametrize(("code", "ok"), [(0, True), (5, True), (3, False), (1, False)])
def test_exit_codes_follow_success_and_permanent_fail_codes(oscar_cwl, code, ok):
    run = oscar_cwl("fail.cwl", "--code", str(code))
    assert run.code == (0 if ok else 1), run.stderr
    if not ok:
        assert "completed permanentFail" in run.stderr and f"exited with status: {code}" in run.stderr
    assert "exiting" in run.stderr  # the tool's uncaptured stderr reaches ours
    assert "Traceback" not in run.stderr


def test_offload_hinted_keeps_light_steps_local(oscar_cwl, cwltool):
    ours = oscar_cwl("--offload", "hinted", "mixed-wf.cwl", "--name", "flood")
    ref = cwltool("mixed-wf.cwl", "--name", "flood")
    assert ours.code == 0, ours.stderr
    assert normalize(ours.out) == normalize(ref.out)
    assert re.findall(r"\[job (\w+)\] submitted to OSCAR", ours.stderr) == ["heavy"]
    assert Path(ours.out["out"]["path"]).read_text() == "FLOOD-PREPARED\n"


def test_cachedir_reuses_offloaded_results(oscar_cwl, tmp_path):
    first = oscar_cwl("--cachedir", str(tmp_path / "cache"), "cat.cwl", "--file", "data.txt", outdir="a")
    second = oscar_cwl("--cachedir", str(tmp_path / "cache"), "cat.cwl", "--file", "data.txt", outdir="b")
    assert first.code == 0 and second.code == 0, second.stderr
    assert "submitted to OSCAR" in first.stderr
    assert "Using cached output" in second.stderr and "submitted to OSCAR" not in second.stderr
    assert normalize(first.out) == normalize(second.out)


def clean_failure(run, words: str, code: int = 1) -> None:
    """A bad-input case of the catalogue: the exit code, the catalogue's words, no traceback."""
    assert run.code == code, run.stderr[-3000:]
    assert words in run.stderr, run.stderr[-3000:]
    assert "Traceback" not in run.stderr


def test_missing_input_file_is_a_clean_error(oscar_cwl):
    run = oscar_cwl("cat.cwl", "--file", "no-such-file.txt")
    clean_failure(run, expect("cwl-input-missing"))
    assert "no-such-file.txt" in run.stderr


def test_missing_s3_input_is_a_clean_error(oscar_cwl, client, tmp_path):
    client.storage.client.create_bucket(Bucket="cwl-missing")
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"file": {"class": "File", "location": "s3://cwl-missing/in/nope.txt"}}))
    run = oscar_cwl("cat.cwl", str(job))
    clean_failure(run, expect("cwl-s3-input-missing"))
    assert "s3://cwl-missing/in/nope.txt" in run.stderr and "upload the object first" in run.stderr


def test_unknown_cluster_profile_is_a_clean_error_and_keeps_the_outdir(oscar_cwl, tmp_path):
    kept = tmp_path / "oscar-out" / "copy.txt"
    kept.parent.mkdir()
    kept.write_text("keep me")
    run = oscar_cwl("--oscar-cluster", "no-such-profile", "cat.cwl", "--file", "data.txt")
    clean_failure(run, expect("cwl-profile-unknown"))
    assert "'no-such-profile'" in run.stderr and "oscar-plugins cluster add" in run.stderr
    assert kept.read_text() == "keep me"  # nothing lost


def test_the_cluster_is_checked_before_any_local_step(oscar_cwl, tmp_path, local_cluster):
    marker = tmp_path / "local-step-ran"
    wf = tmp_path / "local-first.cwl"
    wf.write_text(f"""cwlVersion: v1.2
class: Workflow
$namespaces: {{oscar: 'https://oscar-plugins.readthedocs.io/cwl#'}}
inputs: []
outputs: []
steps:
  local:
    run:
      class: CommandLineTool
      baseCommand: [sh, -c, 'echo ran > {marker}; echo done']
      inputs: []
      outputs: {{out: stdout}}
    in: []
    out: [out]
  remote:
    run:
      class: CommandLineTool
      hints: {{oscar:Offload: {{}}}}
      baseCommand: cat
      inputs: {{f: {{type: File, inputBinding: {{position: 1}}}}}}
      outputs: []
    in: {{f: local/out}}
    out: []
""")
    cfg = tmp_path / "profiles.yaml"
    cfg.write_text(f"oscar:\n  dead:\n    endpoint: http://127.0.0.1:9\n    auth_user: u\n    auth_password: p\n"
                   f"  alive:\n    endpoint: {local_cluster.endpoint}\n    auth_user: u\n    auth_password: p\n")
    env = {"OSCAR_CONFIG": str(cfg), "OSCAR_ENDPOINT": ""}
    for name, words in (("no-such-profile", "known profiles are alive, dead, local"), ("dead", "127.0.0.1:9")):
        run = oscar_cwl("--offload", "hinted", "--oscar-cluster", name, str(wf), env=env)
        clean_failure(run, words)
        assert f"oscar-cwl: error: --oscar-cluster {name}:" in run.stderr
        assert not marker.exists(), f"the local step ran before the cluster {name!r} was checked"
    assert "[step local]" not in run.stderr


def test_invalid_offload_hint_is_a_clean_error(oscar_cwl, tmp_path):
    tool = tmp_path / "hint.cwl"
    tool.write_text("cwlVersion: v1.2\nclass: CommandLineTool\n"
                    "$namespaces: {oscar: 'https://oscar-plugins.readthedocs.io/cwl#'}\n"
                    "hints:\n  oscar:Offload: {cpu: lots}\ninputs: []\noutputs: []\nbaseCommand: 'true'\n")
    run = oscar_cwl(str(tool))
    clean_failure(run, expect("cwl-hint-invalid"))
    assert "oscar:Offload cpu 'lots'" in run.stderr and "submitted to OSCAR" not in run.stderr


@pytest.mark.parametrize("value", ["0", "many"])
def test_bad_max_in_flight_is_a_usage_error(oscar_cwl, value):
    run = oscar_cwl("--max-in-flight", value, "cat.cwl", "--file", "data.txt")
    assert run.code == 2 and "argument --max-in-flight" in run.stderr and "Traceback" not in run.stderr
    if value == "0":
        clean_failure(run, expect("cwl-max-in-flight"), code=2)
    else:
        assert "'many' is not a whole number" in run.stderr


def test_invalid_document_is_a_clean_error(oscar_cwl, tmp_path):
    bad = tmp_path / "bad.cwl"
    bad.write_text("cwlVersion: v1.2\nclass: CommandLineTool\ninputs: {x: {type: nosuchtype}}\noutputs: []\n")
    run = oscar_cwl(str(bad))
    clean_failure(run, expect("cwl-document-invalid"))
    assert "Tool definition failed validation" in run.stderr


def test_unsupported_docker_feature_exits_33(oscar_cwl, tmp_path):
    tool = tmp_path / "dockerfile.cwl"
    tool.write_text("cwlVersion: v1.2\nclass: CommandLineTool\nrequirements:\n  DockerRequirement:\n"
                    "    dockerFile: 'FROM alpine'\n    dockerImageId: custom\ninputs: []\noutputs: []\n"
                    "baseCommand: 'true'\n")
    run = oscar_cwl(str(tool))
    clean_failure(run, expect("cwl-dockerfile"), code=33)
    assert "dockerFile" in run.stderr


def test_a_cluster_that_refuses_is_a_clean_error(oscar_cwl):
    run = oscar_cwl("cat.cwl", "--file", "data.txt", env={"OSCAR_PASSWORD": "wrong"})
    clean_failure(run, expect("cwl-cred-wrong"))
    assert "could not be submitted to OSCAR" in run.stderr
    assert "wrong" not in run.stderr.replace("wrong password", "")  # the secret itself is never shown


def test_s3_inputs_are_fetched_in_the_pod(oscar_cwl, client, tmp_path):
    storage = client.storage
    storage.client.create_bucket(Bucket="cwl-inputs")
    storage.client.put_object(Bucket="cwl-inputs", Key="in/data.txt", Body=b"from the object store\n")
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"file": {"class": "File", "location": "s3://cwl-inputs/in/data.txt"}}))
    run = oscar_cwl("cat.cwl", str(job))
    assert run.code == 0, run.stderr
    assert Path(run.out["out"]["path"]).read_text() == "from the object store\n"


def test_provenance_and_parallel_options_work(oscar_cwl, tmp_path):
    run = oscar_cwl("--parallel", "--provenance", str(tmp_path / "ro"), "scatter-wf.cwl", "--items", "a",
                    "--items", "b")
    assert run.code == 0, run.stderr
    assert (tmp_path / "ro" / "metadata" / "provenance" / "primary.cwlprov.provn").is_file()
    assert len(run.out["results"]) == 2


def test_sigterm_cancels_jobs_in_flight(cluster_env, client, tmp_path):
    sleeper = tmp_path / "sleep.cwl"
    sleeper.write_text("cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: [sleep, '120']\ninputs: []\n"
                       "outputs: []\n")
    proc = subprocess.Popen([str(BIN / "oscar-cwl"), "--outdir", str(tmp_path / "o"), str(sleeper)], cwd=DATA,
                            env=cluster_env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    service = job = None
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        m = re.search(r"submitted to OSCAR cluster '[^']+' as ([\w-]+)/([\w-]+)", line)
        if m:
            service, job = m.groups()
            break
        assert time.monotonic() < deadline
    assert service and job
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 15
    assert "cancelled 1 OSCAR job(s) in flight" in rest
    assert job not in client.list_jobs(service)


def test_an_image_that_cannot_be_used_is_a_clean_error(oscar_cwl, tmp_path):
    tool = tmp_path / "badimage.cwl"
    tool.write_text("cwlVersion: v1.2\nclass: CommandLineTool\nrequirements:\n  DockerRequirement:\n"
                    "    dockerPull: 'not an image'\ninputs: []\noutputs: []\nbaseCommand: 'true'\n")
    run = oscar_cwl(str(tool))
    clean_failure(run, expect("cwl-image-invalid"))
    assert "could not be submitted to OSCAR" in run.stderr and "'not an image'" in run.stderr


def test_a_job_that_never_starts_is_cancelled_after_the_start_timeout(oscar_cwl, tmp_path):
    # Two branches that each need the whole (2-core) local cluster: the second stays Pending.
    (tmp_path / "big.cwl").write_text("""\
cwlVersion: v1.2
class: CommandLineTool
$namespaces: {oscar: "https://oscar-plugins.readthedocs.io/cwl#"}
hints:
  oscar:Offload: {cpu: "2"}
inputs:
  seconds: {type: int, inputBinding: {}}
outputs: []
baseCommand: sleep
""")
    (tmp_path / "wf.cwl").write_text("""\
cwlVersion: v1.2
class: Workflow
requirements: {ScatterFeatureRequirement: {}}
inputs: {seconds: "int[]"}
outputs: []
steps:
  big: {run: big.cwl, scatter: seconds, in: {seconds: seconds}, out: []}
""")
    run = oscar_cwl("--oscar-start-timeout", "4", str(tmp_path / "wf.cwl"), "--seconds", "12", "--seconds", "12",
                    timeout=180)
    assert run.code == 1, run.stderr
    assert "did not start within 4 s and was cancelled" in run.stderr and "Traceback" not in run.stderr


def test_concurrent_runs_share_a_new_runner_service(cluster_env, tmp_path):
    # Both runs find the service missing and create it at the same moment; both must succeed.
    image = f"example.org/race:{time.time_ns()}"
    procs = [subprocess.Popen([str(BIN / "oscar-cwl"), "--quiet", "--oscar-image", image, "--outdir",
                               str(tmp_path / f"o{i}"), "cat.cwl", "--file", "data.txt"], cwd=DATA, env=cluster_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err
        assert json.loads(out)["out"]["basename"] == "copy.txt"


def test_runner_services_are_ready_before_the_first_job(oscar_cwl):
    # Creating an OSCAR service restarts its MinIO (create.go -> utils/minio.go RestartServer): every runner
    # service the workflow needs is deployed before its first job, not in the middle of the scatter.
    run = oscar_cwl("two-tools-wf.cwl", "--items", "a", "--items", "b")
    assert run.code == 0, run.stderr
    ready = run.stderr.index("2 runner service(s) ready before the first job")
    assert ready < run.stderr.index("submitted to OSCAR")
