"""OscarPipeline: a real itwinai pipeline (YAML through ``itwinai exec-pipeline``, and Python) writes its timeline
and its Workflow Run RO-Crate, local steps beside offloaded ones."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from oscar_plugins.itwinai import OscarPipeline, OscarStep, StepConfigError, StepFailed

from .conftest import HERE, exec_pipeline
from .test_pipelines_local import DOUBLE_SCRIPT, RUNNER

NAMESPACE = "https://oscar-plugins.readthedocs.io/cwl#"
CONFIG = """
pipe:
  _target_: oscar_plugins.itwinai.OscarPipeline
  name: doubling
  timeline: {out}/run.png
  ro_crate: {out}/run.crate.zip
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
    record: {{_target_: pipeline_parts.Recorder, path: {out}/result}}
"""


def test_a_yaml_pipeline_writes_its_timeline_and_crate(tmp_path, oscar_env, local_cluster):
    from PIL import Image
    from rocrate.rocrate import ROCrate

    service = {"name": "it-double", "image": "python:3.11-slim", "memory": "2Gi", "script": DOUBLE_SCRIPT}
    (tmp_path / "config.yaml").write_text(CONFIG.format(out=tmp_path, service=json.dumps(service),
                                                        runner=json.dumps(RUNNER), parts=HERE / "pipeline_parts.py"))
    done = exec_pipeline(tmp_path, "pipe", oscar_env)
    assert done.returncode == 0, done.stderr[-3000:]

    image = Image.open(tmp_path / "run.png")
    image.load()
    assert image.format == "PNG" and len(image.convert("RGB").getcolors(1 << 20) or []) > 10

    crate = ROCrate(tmp_path / "run.crate.zip")
    main = crate.mainEntity
    assert "ComputationalWorkflow" in main.type and main["programmingLanguage"]["name"] == "itwinai"
    config = json.loads(zipfile.ZipFile(tmp_path / "run.crate.zip").read(main.id))
    assert config["_target_"] == "oscar_plugins.itwinai.OscarPipeline"  # the pipeline as Hydra builds it
    actions = {a["name"]: a for a in crate.get_by_type("CreateAction")}
    assert set(actions) == {"Run of itwinai pipeline doubling", *(f"Run of {s}" for s in
                                                                  ("getter", "double", "triple", "record"))}
    assert actions["Run of getter"].get("oscarJob") is None and actions["Run of record"].get("oscarJob") is None
    sync_run, job = actions["Run of double"]["oscarJob"], actions["Run of triple"]["oscarJob"]
    assert sync_run["oscarService"] == "it-double" and sync_run["name"] == "run of it-double"
    assert job["oscarService"] == "it-runner" and job["oscarState"] == "Succeeded" and job["startTime"]
    assert job["oscarEndpoint"] == local_cluster.endpoint
    record = json.loads(zipfile.ZipFile(tmp_path / "run.crate.zip").read(job["subjectOf"].id))
    assert record["job"] == job["name"] and all(e["sha256"] for e in record["inputs"] + record["outputs"])
    assert crate.dereference(NAMESPACE + "oscarJob")["rdfs:comment"]
    blobs = [zipfile.ZipFile(tmp_path / "run.crate.zip").read(n)
             for n in zipfile.ZipFile(tmp_path / "run.crate.zip").namelist()]
    assert not [b for b in blobs if local_cluster.password.encode() in b]


def test_a_failed_run_still_writes_its_report_marking_the_step(on_cluster):
    from pipeline_parts import TensorGetter

    svc = {"name": "it-fail", "image": "alpine", "script": "echo 'about to fail' >&2\nexit 7\n"}
    pipe = OscarPipeline({"getter": TensorGetter(), "fail": OscarStep(svc, mode="sync", name="fail-step")},
                         name="failing", timeline=str(on_cluster / "run.html"))
    with pytest.raises(StepFailed):
        pipe.execute()
    assert [(s.name, s.status, len(s.jobs)) for s in pipe.last_steps] == [("getter", "succeeded", 0),
                                                                           ("fail", "failed", 1)]
    page = (on_cluster / "run.html").read_text()
    assert "data-service='it-fail'" in page and "itwinai steps (local)" in page and "failed" in page


def test_a_python_pipeline_reports_in_a_folder_crate(on_cluster):
    from rocrate.rocrate import ROCrate

    svc = {"name": "it-plus", "image": "python:3.11-slim", "script": (
        'python3 -c "import numpy as np, os; a = np.load(os.environ[\'INPUT_FILE_PATH\']); '
        'np.save(os.environ[\'TMP_OUTPUT_DIR\'] + \'/plus1.npy\', a + 1)"')}
    pipe = OscarPipeline([OscarStep(svc, mode="async", name="plus")], ro_crate=str(on_cluster / "crate"))
    assert np.array_equal(pipe.execute(np.arange(3.0)), np.arange(3.0) + 1)
    [job] = ROCrate(on_cluster / "crate").get_by_type("OscarJob")
    assert job["oscarService"] == "it-plus" and job["oscarState"] == "Succeeded"


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"timeline": "run.svg"}, "unknown suffix '.svg'"),
    ({"timeline": "no-such-folder/run.png"}, "does not exist"),
    ({"ro_crate": "no-such-folder/run.zip"}, "does not exist"),
])
def test_a_bad_report_path_fails_before_any_step(on_cluster, kwargs, needle):
    with pytest.raises(StepConfigError, match=needle):
        OscarPipeline([], name="p", **kwargs)
