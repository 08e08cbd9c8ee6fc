"""Real itwinai pipelines against the embedded local cluster, with real tensors.

YAML pipelines run through ``itwinai exec-pipeline`` in a subprocess, as users run them; the other
tests build pipelines in Python to check errors, staging and clean-up precisely.
"""

from __future__ import annotations

import json
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from itwinai.pipeline import Pipeline

from oscar_plugins.itwinai import ItwinaiNotInstalled, OscarOffload, OscarStep, StepConfigError, StepError, StepFailed
from tests.reliability.catalogue import expect

from .conftest import HERE, exec_pipeline

RUNNER = {"name": "it-runner", "image": "ghcr.io/intertwin-eu/itwinai:torch-slim-latest", "memory": "2Gi"}
DOUBLE_SCRIPT = textwrap.dedent("""\
    python3 - <<'EOF'
    import json, os
    import numpy as np, torch
    inputs, out = os.environ["OSCAR_INPUTS_DIR"], os.environ["TMP_OUTPUT_DIR"]
    names = json.load(open(os.path.join(inputs, "oscar-itwinai-args.json")))
    tensor = torch.load(os.path.join(inputs, names[0]), weights_only=True)
    array = np.load(os.path.join(inputs, names[1]))
    torch.save(tensor * 2, os.path.join(out, "doubled.pt"))
    np.save(os.path.join(out, "doubled.npy"), array * 2)
    EOF
    """)

PIPELINE_YAML = """
pipe:
  _target_: itwinai.pipeline.Pipeline
  steps:
    getter: {{_target_: pipeline_parts.TensorGetter, n: 12, rows: 3}}
    double:
      _target_: oscar_plugins.itwinai.OscarStep
      name: double
      mode: sync
      service: {service}
      outputs: [doubled.pt, doubled.npy]
    triple:
      _target_: oscar_plugins.itwinai.OscarOffload
      _recursive_: false
      name: triple
      mode: async
      service: {runner}
      files: [{parts}]
      component: {{_target_: pipeline_parts.Scale, factor: 3.0}}
    record: {{_target_: pipeline_parts.Recorder, path: {out}}}

ghost:
  _target_: itwinai.pipeline.Pipeline
  steps:
    - _target_: oscar_plugins.itwinai.OscarStep
      name: ghost-step
      service: it-ghost-yaml

failing:
  _target_: itwinai.pipeline.Pipeline
  steps:
    - _target_: oscar_plugins.itwinai.OscarOffload
      _recursive_: false
      name: boom-step
      mode: async
      service: {runner}
      files: [{parts}]
      component: {{_target_: pipeline_parts.Boom, message: kaboom}}
"""


@pytest.fixture()
def yaml_config(tmp_path: Path) -> Path:
    service = {"name": "it-double", "image": "python:3.11-slim", "memory": "2Gi", "script": DOUBLE_SCRIPT}
    (tmp_path / "config.yaml").write_text(PIPELINE_YAML.format(
        service=json.dumps(service), runner=json.dumps(RUNNER), parts=HERE / "pipeline_parts.py",
        out=tmp_path / "result"))
    return tmp_path


def test_yaml_pipeline_round_trips_tensors_sync_and_async(yaml_config, oscar_env):
    done = exec_pipeline(yaml_config, "pipe", oscar_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "'double' executed in" in done.stdout and "'triple' executed in" in done.stdout
    expected = np.arange(12, dtype=np.float32).reshape(3, 4) * 6  # x2 on OSCAR (sync), x3 offloaded (async)
    with np.load(yaml_config / "result.npz") as got:
        assert got["arg0"].dtype == np.float32 and np.array_equal(got["arg0"], expected)
        assert got["arg1"].dtype == np.float64 and np.array_equal(got["arg1"], expected.astype(np.float64))
    meta = json.loads((yaml_config / "result.json").read_text())
    assert meta[0] == {"type": "tensor", "dtype": "torch.float32"}
    assert meta[2]["value"] == {"shape": [3, 4], "dtype": "torch.float32", "array_type": "ndarray"}


def test_failing_remote_step_fails_the_yaml_pipeline_with_the_log_tail(yaml_config, oscar_env):
    done = exec_pipeline(yaml_config, "failing", oscar_env)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "step 'boom-step'" in output
    assert "(last lines):" in output  # the core's JobFailed report: "Job log (last lines):" / "Script output ..."
    assert "ValueError: kaboom: the remote component failed on purpose" in output  # the remote traceback


def test_sync_script_failure_carries_exit_code_and_log(on_cluster):
    svc = {"name": "it-fail", "image": "alpine", "script": "echo 'about to fail' >&2\nexit 7\n"}
    pipe = Pipeline({"fail": OscarStep(svc, mode="sync", name="fail-step")})
    with pytest.raises(StepFailed, match=r"step 'fail-step'.*code 7") as info:
        pipe.execute()
    assert info.value.exit_code == 7 and "about to fail" in info.value.log_tail


def test_service_without_itwinai_is_reported_naming_the_step(on_cluster):
    step = OscarOffload({"_target_": "pipeline_parts.Scale"}, mode="sync", python="python3 -S",  # -S: no site
                        service={"name": "it-no-itwinai", "image": "python:3.11-slim"}, name="no-itwinai")
    with pytest.raises(ItwinaiNotInstalled, match=r"step 'no-itwinai'.*cannot import itwinai") as info:
        step.execute(1.0)
    assert "itwinai is not importable" in info.value.log_tail


def test_large_input_switches_to_bucket_staging_and_cleanup_removes_it(on_cluster, client):
    script = ('python3 -c "import numpy as np, os; a = np.load(os.environ[\'INPUT_FILE_PATH\']); '
              'np.save(os.environ[\'TMP_OUTPUT_DIR\'] + \'/plus1.npy\', a + 1)"')
    svc = {"name": "it-stage", "image": "python:3.11-slim", "script": script}
    step = OscarStep(svc, sync_limit_mb=0.05, name="stage")  # mode auto; 200 KB is over the sync limit
    data = np.random.default_rng(0).random(25_000)  # 200 KB: staged through the bucket (> 48 KiB inline)
    got = Pipeline([step]).execute(data)
    assert np.array_equal(got, data + 1)
    run = step.last_run
    assert run is not None and run.mode == "async" and run.job
    assert run.job not in client.list_jobs("it-stage")  # cleanup() deleted the job ...
    assert list(client.storage.list("it-stage", f"out/{run.job}/")) == []  # ... and its outputs
    assert not any(p.exists() for p in step._workdirs)


def test_single_zip_output_is_not_unpacked_in_sync_mode(on_cluster):
    script = ('python3 -c "import zipfile, os; z = zipfile.ZipFile(os.environ[\'TMP_OUTPUT_DIR\'] + \'/bundle.zip\', '
              '\'w\'); z.writestr(\'inner.txt\', \'hi\'); z.close()"')
    step = OscarStep({"name": "it-zip", "image": "python:3.11-slim", "script": script}, mode="sync", name="zip")
    got = step.execute()
    assert isinstance(got, Path) and got.name == "bundle.zip" and got.parent == on_cluster / "oscar-outputs" / "zip"
    assert zipfile.ZipFile(got).read("inner.txt") == b"hi"


def test_missing_service_fails_the_yaml_pipeline_naming_the_step(yaml_config, oscar_env):
    done = exec_pipeline(yaml_config, "ghost", oscar_env)
    assert done.returncode != 0
    # itwinai's CLI (Hydra) prints the stack of any failing step; the last line is our message.
    assert expect("it-service-missing") in done.stderr, done.stderr[-3000:]
    assert "step 'ghost-step': service 'it-ghost-yaml' does not exist" in done.stderr


def test_missing_or_foreign_service_names_are_clear(on_cluster):
    with pytest.raises(StepConfigError, match=r"step 'ghost': service 'it-ghost' does not exist") as info:
        OscarStep("it-ghost", name="ghost").execute(torch.ones(1))
    assert expect("it-service-missing") in str(info.value)
    OscarStep({"name": "it-plain", "image": "alpine", "script": "true"}, mode="sync").execute()
    with pytest.raises(StepConfigError, match="lacks the runner"):
        OscarOffload({"_target_": "pipeline_parts.Scale"}, service="it-plain").execute(torch.ones(1))


def test_plain_oscar_service_gets_one_input_and_returns_its_answer(on_cluster, client):
    client.ensure_service({"name": "it-upper", "image": "alpine", "script": "tr a-z A-Z < \"$INPUT_FILE_PATH\""},
                          wrap=False)  # deployed the plain OSCAR way, not by this library
    got = OscarStep("it-upper", mode="sync", name="upper").execute("shout")
    assert isinstance(got, Path) and got.read_text().strip() == '"SHOUT"'  # the argument travelled as JSON


ECHO = {"name": "it-echo", "image": "alpine", "script": 'echo hi > "$TMP_OUTPUT_DIR/a.txt"'}


def _step_error(step: OscarStep, *args) -> str:
    with pytest.raises((StepConfigError, StepError)) as info:
        Pipeline([step]).execute(*args)
    message = str(info.value)
    assert message.startswith(f"step {step.name!r}: ") and "Traceback" not in message
    return message


def test_unknown_cluster_profile_is_named(on_cluster):
    message = _step_error(OscarStep(ECHO, cluster="no-such-profile", name="profile-step"))
    assert expect("it-profile-unknown") in message and "'no-such-profile'" in message


def test_refused_credentials_are_named_without_the_password(on_cluster, monkeypatch):
    monkeypatch.setenv("OSCAR_PASSWORD", "wrong-password-4711")
    message = _step_error(OscarStep(ECHO, name="cred-step"))
    assert expect("it-cred-wrong") in message and "wrong-password-4711" not in message


def test_missing_input_file_is_named_before_contacting_the_cluster(on_cluster, monkeypatch):
    monkeypatch.setenv("OSCAR_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: must not be reached
    message = _step_error(OscarStep(ECHO, name="input-step"), on_cluster / "no-such-input.npy")
    assert expect("it-input-missing") in message and "no-such-input.npy" in message


def test_an_output_the_script_does_not_write_is_named(on_cluster):
    message = _step_error(OscarStep(ECHO, mode="sync", outputs=["b.npy"], name="output-step"))
    assert expect("it-output-missing") in message and "b.npy (it wrote: a.txt)" in message


def test_offload_ships_a_folder_and_rewrites_paths_inside_it(on_cluster):
    (on_cluster / "dataset" / "sub").mkdir(parents=True)
    (on_cluster / "dataset" / "sub" / "x.txt").write_text("from a shipped folder")
    step = OscarOffload({"_target_": "pipeline_parts.ReadText", "path": "dataset/sub/x.txt"}, service=RUNNER,
                        files=[str(HERE / "pipeline_parts.py"), "dataset/"], mode="sync", name="folder")
    assert Pipeline([step]).execute() == "from a shipped folder"
    assert step.last_run is not None and step.last_run.mode == "sync"
