"""itwinai's own 3DGAN use case, unchanged, with its predictor offloaded to OSCAR by configuration alone.

The use case (code and ``config.yaml`` of interTwin's ``use-cases/3dgan``) lives in ``../shared/itwinai-3dgan``
beside the repository; it is copied to a temporary folder, because its pipeline writes next to its files.
Offline sample: the use case's own ``create_inference_sample.py`` writes the checkpoint, and
``examples/3dgan/itwinai-usecase/make_sample_data.py`` a small H5 file in the layout its dataloader reads.

Both runs go through the real CLI, ``itwinai exec-pipeline``, in a subprocess: first the use case's
``inference_pipeline`` as it is, in-process; then the same pipeline through our
``examples/3dgan/itwinai-usecase/oscar-predictor.yaml``, which loads the unchanged ``config.yaml`` through
its defaults list and turns the predictor step into an ``oscar_plugins.itwinai.offloaded`` step running
on the session's embedded local cluster. The use case seeds its predictor itself (``seed_everything:
${random_seed}`` in its Lightning config, before the model is built and the noise drawn), so the two
runs must write bit-identical showers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from .conftest import ITWINAI

REPO = Path(__file__).resolve().parents[2]
USECASE = REPO.parent / "shared" / "itwinai-3dgan"
EXAMPLE = REPO / "examples" / "3dgan" / "itwinai-usecase"
EVENTS = 8  # two batches of the use case's batch_size 4
STEP = "inference_pipeline.steps.inference_step"

pytestmark = pytest.mark.skipif(
    not (USECASE / "config.yaml").is_file(),
    reason=f"itwinai's 3DGAN use case is not at {USECASE} (../shared/itwinai-3dgan beside the repository)")


def _run(cwd: Path, args: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> str:
    full_env = {**os.environ, **(env or {}), "PYTHONWARNINGS": "ignore",
                # Recent mlflow (3.17 here) refuses the file store of the use case's MLFlowLogger without this.
                "MLFLOW_ALLOW_FILE_STORE": "true"}
    done = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def usecase(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable copy of the use case with its checkpoint and a synthetic H5 sample, made offline."""
    copy = tmp_path_factory.mktemp("itwinai-3dgan") / "3dgan"
    shutil.copytree(USECASE, copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)  # shared/ is read-only
    _run(copy, [sys.executable, "create_inference_sample.py"])  # the use case's own script: the checkpoint
    _run(copy, [sys.executable, str(EXAMPLE / "make_sample_data.py"), "--events", str(EVENTS)])
    assert (copy / "3dgan-inference.pth").is_file() and (copy / "exp_data" / "data" / "file_0.h5").is_file()
    return copy


def _showers(folder: Path) -> dict[str, torch.Tensor]:
    return {p.name: torch.load(p, weights_only=True) for p in sorted(folder.glob("*.pth"))}


def test_offloaded_predictor_writes_the_same_showers_as_in_process(usecase, oscar_env):
    assert (usecase / "config.yaml").read_bytes() == (USECASE / "config.yaml").read_bytes()
    itwinai = [str(ITWINAI), "exec-pipeline"]
    local_log = _run(usecase, [*itwinai, "+pipe_key=inference_pipeline", "inference_results_location=showers-local"])
    assert "'Lightning3DGANPredictor' executed in" in local_log

    oscar_log = _run(usecase, [*itwinai, "--config-path", str(EXAMPLE), "--config-name", "oscar-predictor",
                               "--config-dir", str(usecase), "+pipe_key=inference_pipeline",
                               "inference_results_location=showers-oscar"], env=oscar_env)
    assert "'Lightning3DGANPredictor@oscar' executed in" in oscar_log
    assert "ran on service itwinai-3dgan (async job" in oscar_log  # checkpoint + data: over the sync limit
    assert "'ParticleImagesSaver' executed in" in oscar_log

    local, offloaded = _showers(usecase / "showers-local"), _showers(usecase / "showers-oscar")
    assert len(local) == EVENTS and list(offloaded) == list(local)  # same energy=...&angle=... names
    for name, shower in local.items():
        assert shower.shape == (51, 51, 25) and shower.dtype == torch.float32
        assert torch.equal(offloaded[name], shower), f"{name} differs"
        assert shower.max() > 0  # a real shower, not an empty tensor compared with another
        assert (usecase / "showers-oscar" / name.replace(".pth", ".jpg")).is_file()  # the saver's plot too
    # The showers are views into one batch tensor: the use case's saver writes the whole batch into each
    # file in-process; offloaded, each travelled (and was saved) alone.
    first = next(iter(local))
    assert (usecase / "showers-oscar" / first).stat().st_size * 4 < (usecase / "showers-local" / first).stat().st_size


def _composed_step(usecase: Path, *args: str) -> dict:
    out = subprocess.run([str(ITWINAI), "exec-pipeline", *args, "+pipe_key=inference_pipeline", "--cfg", "job",
                          "--resolve"], cwd=usecase, capture_output=True, text=True, timeout=120, check=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"}).stdout
    step = yaml.safe_load(out)["inference_pipeline"]["steps"]["inference_step"]
    assert isinstance(step, dict)
    return step


def test_command_line_overrides_compose_the_same_step_as_our_config(usecase):
    """The README's override-only form (no file of ours) equals oscar-predictor.yaml but for the service."""
    ours = _composed_step(usecase, "--config-path", str(EXAMPLE), "--config-name", "oscar-predictor",
                          "--config-dir", str(usecase))
    overrides = _composed_step(
        usecase,
        f"{STEP}._target_=oscar_plugins.itwinai.offloaded", f"+{STEP}._recursive_=false",
        f"+{STEP}.oscar={{target: trainer.Lightning3DGANPredictor, "
        "files: [trainer.py, model.py, dataloader.py, '${inference_model_uri}', '${dataset_location}'], "
        "env: {MLFLOW_ALLOW_FILE_STORE: 'true'}}")
    unchanged = _composed_step(usecase)
    assert ours["oscar"].pop("service")["name"] == "itwinai-3dgan"  # overrides: the default service
    assert ours["oscar"].pop("cluster") is None  # overrides: the default too
    assert ours == overrides
    assert ours["oscar"]["files"][3:] == ["3dgan-inference.pth", "exp_data/"]  # interpolated from config.yaml
    assert unchanged["_target_"] == ours["oscar"]["target"]
    del ours["_target_"], ours["_recursive_"], ours["oscar"], unchanged["_target_"]
    assert ours == unchanged  # the step's own keys (model, config) are untouched
