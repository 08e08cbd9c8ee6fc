"""The components without a cluster: construction checks, to_dict()/YAML round trips, service resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra.utils import instantiate
from itwinai.pipeline import Pipeline
from omegaconf import OmegaConf

from oscar_plugins import Service
from oscar_plugins.itwinai import OscarOffload, OscarStep, StepConfigError, remote
from oscar_plugins.itwinai._service import STEP_MARKER, resolve_service, step_script
from tests.reliability.catalogue import expect

SERVICE = {"name": "it-double", "image": "python:3.11-slim", "script": "cp $INPUT_FILE_PATH $TMP_OUTPUT_DIR/"}

FDL = """
functions:
  oscar:
  - c1: {name: first, image: alpine, script: run.sh}
  - c1: {name: second, image: alpine}
"""


@pytest.fixture(autouse=True)
def _parts_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def test_step_to_dict_roundtrips_through_yaml():
    step = OscarStep(SERVICE, cluster="prod", mode="async", timeout=120, outputs=["a.npy"], env={"K": 1},
                     name="double")
    data = step.to_dict()
    assert data["_target_"] == "oscar_plugins.itwinai.OscarStep"
    assert data["service"] == SERVICE and data["mode"] == "async" and data["outputs"] == ["a.npy"]
    again = instantiate(OmegaConf.create(yaml.safe_load(yaml.safe_dump({"s": data})))["s"], _convert_="all")
    assert isinstance(again, OscarStep) and again.to_dict() == data
    assert again.name == "double" and again.transport.service.name == "it-double"
    assert STEP_MARKER in again.transport.service.script


def test_offload_to_dict_keeps_the_component_a_config():
    from pipeline_parts import Scale

    built = OscarOffload(Scale(factor=3.0), service=SERVICE | {"script": "true"}, files=["model.pt"])
    data = built.to_dict()
    assert data["_recursive_"] is False
    assert data["component"] == {"_target_": "pipeline_parts.Scale", "factor": 3.0, "name": None}
    assert built.name == "Scale@oscar"
    pipe = Pipeline({"getter": OscarStep("existing-service"), "remote": built})
    again = instantiate(pipe.to_dict(), _convert_="all")  # Hydra as `itwinai exec-pipeline` does
    assert isinstance(again.steps["remote"], OscarOffload)
    assert again.steps["remote"].component_config == data["component"]
    assert again.to_dict() == pipe.to_dict()
    script = again.steps["remote"].transport.service.script
    assert script.startswith("true\n") is False and remote.RUNNER_MARKER in script and "\ntrue\n" in script


def test_unserialisable_arguments_fail_naming_the_step():
    with pytest.raises(StepConfigError, match=r"step 'bad': .*'env'"):
        OscarStep(SERVICE, env={"K": object()}, name="bad")
    from pipeline_parts import Scale

    with pytest.raises(StepConfigError, match=r"step 'Scale@oscar'|step 'OscarOffload'.*cannot be offloaded"):
        OscarOffload(Scale(factor=np.float32(2.0)))  # a numpy scalar is no plain value
    with pytest.raises(StepConfigError, match="component must be an itwinai component"):
        OscarOffload({"factor": 2})


def test_bad_arguments_are_named():
    with pytest.raises(StepConfigError, match=r"step 'x': mode 'fast'") as info:
        OscarStep(SERVICE, mode="fast", name="x")
    assert expect("it-mode-invalid") in str(info.value) and "auto, sync, async" in str(info.value)
    with pytest.raises(StepConfigError, match="timeout"):
        OscarStep(SERVICE, timeout=-1)
    with pytest.raises(StepConfigError, match="service must be a name"):
        OscarStep(3)  # type: ignore[arg-type]


def test_too_large_for_sync_fails_before_contacting_any_cluster(monkeypatch):
    monkeypatch.setenv("OSCAR_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: must not be reached
    step = OscarStep(SERVICE, mode="sync", sync_limit_mb=0.1, name="big-step")
    pattern = r"step 'big-step': its inputs \(0.38 MiB.*too large for mode 'sync'"
    with pytest.raises(StepConfigError, match=pattern) as info:
        step.execute(np.zeros(50_000))
    assert expect("it-sync-too-large") in str(info.value)
    assert step._workdirs == []  # cleanup() ran (monitor_exec) and removed the temporary files


def test_resolve_service_forms(tmp_path):
    (tmp_path / "run.sh").write_text("echo from file\n")
    fdl = tmp_path / "svc.yaml"
    fdl.write_text(FDL)
    assert resolve_service("plain-name", step="s", script_for=step_script) == "plain-name"
    first = resolve_service(f"{fdl}#first", step="s", script_for=step_script)
    assert isinstance(first, Service) and first.script.endswith("echo from file\n")
    assert [o.path for o in first.output] == ["first/out"]  # a default output path for async jobs
    runner = resolve_service(f"{fdl}#second", step="s", script_for=lambda s: remote.service_script())
    assert remote.RUNNER_MARKER in runner.script
    with pytest.raises(StepConfigError, match="several services"):
        resolve_service(str(fdl), step="s", script_for=step_script)
    with pytest.raises(StepConfigError, match="no service named 'third'"):
        resolve_service(f"{fdl}#third", step="s", script_for=step_script)
    with pytest.raises(StepConfigError, match=r"step 's': .*field 'script'"):
        resolve_service(f"{fdl}#second", step="s", script_for=step_script)  # OscarStep needs a script
    with pytest.raises(StepConfigError, match="cannot read"):
        resolve_service(str(tmp_path / "missing.yaml"), step="s", script_for=step_script)
    (tmp_path / "broken.yaml").write_text("functions: [oops")
    with pytest.raises(StepConfigError, match="not valid YAML"):
        resolve_service(str(tmp_path / "broken.yaml"), step="s", script_for=step_script)


def test_missing_fdl_file_fails_at_construction_naming_the_fix(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(StepConfigError) as info:
        OscarStep(str(missing), name="fdl-step")
    message = str(info.value)
    assert expect("it-fdl-missing") in message
    assert message.startswith("step 'fdl-step': ") and str(missing) in message and "fix the path" in message
    assert "Traceback" not in message


WRAPPED = """
scale: 3.0
pipe:
  _target_: itwinai.pipeline.Pipeline
  steps:
    remote:
      _target_: oscar_plugins.itwinai.offloaded   # the step's _target_ was pipeline_parts.Scale
      _recursive_: false
      factor: ${scale}
      extra: {_target_: pipeline_parts.Scale}     # a nested config stays a config
      oscar: {target: pipeline_parts.Scale, service: it-runner, files: [model.pt], mode: async, name: wrapped}
"""


def test_offloaded_wraps_a_step_keeping_its_own_keys():
    pipe = instantiate(OmegaConf.create(WRAPPED)["pipe"], _convert_="all")  # as `itwinai exec-pipeline` does
    step = pipe.steps["remote"]
    assert isinstance(step, OscarOffload) and step.name == "wrapped" and step.mode == "async"
    assert step.component_config == {"_target_": "pipeline_parts.Scale", "factor": 3.0,
                                     "extra": {"_target_": "pipeline_parts.Scale"}}
    assert step.files == ["model.pt"] and step.transport.service == "it-runner"
    assert instantiate(step.to_dict(), _convert_="all").component_config == step.component_config


def test_offloaded_names_what_is_wrong():
    from oscar_plugins.itwinai import offloaded

    eager = OmegaConf.create(WRAPPED.replace("      _recursive_: false\n", ""))["pipe"]
    with pytest.raises(Exception, match=r"'extra' reached this step as a built Scale.*_recursive_: false"):
        instantiate(eager, _convert_="all")  # Hydra built the nested config here
    with pytest.raises(StepConfigError, match=r"oscar.target must name the component"):
        offloaded({"service": "x"}, factor=2)
    with pytest.raises(StepConfigError, match=r"step 'w': unknown key\(s\) under oscar: servce"):
        offloaded({"target": "pipeline_parts.Scale", "servce": "x", "name": "w"})
    with pytest.raises(StepConfigError, match="oscar must be a mapping"):
        offloaded("pipeline_parts.Scale")  # type: ignore[arg-type]


def test_shipped_folders_and_paths_inside_them_are_rewritten(tmp_path, monkeypatch):
    from oscar_plugins.itwinai._offload import _replace_paths, pack_folder

    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp_data" / "data").mkdir(parents=True)
    (tmp_path / "exp_data" / "data" / "file_0.h5").write_bytes(b"h5")
    folders = {(tmp_path / "exp_data").resolve(): "exp_data"}
    names = {"exp_data/": "exp_data", str((tmp_path / "exp_data").resolve()): "exp_data"}
    config = {"a": "exp_data/", "b": str(tmp_path / "exp_data"), "c": "exp_data/data/file_0.h5",
              "d": "exp_data/missing.h5", "e": "auto", "f": ["exp_data"]}
    assert _replace_paths(config, names, folders) == {
        "a": "oscar-input://exp_data", "b": "oscar-input://exp_data", "c": "oscar-input://exp_data/data/file_0.h5",
        "d": "exp_data/missing.h5", "e": "auto", "f": ["oscar-input://exp_data"]}
    pack_folder(tmp_path / "exp_data", tmp_path / "one.tar")
    pack_folder(tmp_path / "exp_data", tmp_path / "two.tar")  # unchanged folder: same archive (reused staging)
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "exp_data").mkdir()
    step = OscarOffload({"_target_": "pipeline_parts.Scale"}, service="it-runner",
                        files=["exp_data", "other/exp_data"], name="twice")
    with pytest.raises(StepConfigError, match=r"step 'twice': two entries of files would arrive as 'exp_data'"):
        step._shipped()
    step = OscarOffload({"_target_": "pipeline_parts.Scale"}, service="it-runner", files=["nope"], name="nope")
    with pytest.raises(StepConfigError, match="'nope' in files is neither a file nor a folder"):
        step._shipped()
