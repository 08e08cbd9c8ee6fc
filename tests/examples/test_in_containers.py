"""The examples on a local cluster that runs every job in its image (podman), as OSCAR runs a pod.

The examples' own image (``quay.io/jupyter/scipy-notebook``, several GB) cannot be pulled here, so the
offloaded steps run in the SciPy image ``tests/engines.py`` builds offline from Debian's packages
(python3, numpy, scipy): the flood demo through ``run_demo.py --image``, the drought workflow
through a cwltool overrides file (what ``--image`` writes), the FDL services with their ``image`` set.
Every test skips with the reason when no container can run here. The same examples in host mode are in
``test_flood.py`` and ``test_drought.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oscar_plugins import Dispatcher, OscarClient, load_fdl, resolve_profile
from oscar_plugins.local import LocalCluster
from tests import engines
from tests.examples.steps import load_step

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("OSCAR_PLUGINS_LOCAL_EXECUTION") == "supervisor",
                       reason="the real supervisor runs jobs on the host, without the engine (docs/CONTAINERS.md); "
                              "these tests run in the default execution"),
]

ENGINE = "podman"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def image() -> str:
    problem = engines.reason("scipy", ENGINE)  # builds it the first time (a few minutes from the Debian mirror)
    if problem:
        pytest.skip(f"no SciPy image can run here: {problem}")
    return engines.SCIPY


@pytest.fixture(scope="module")
def pod_cluster(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(data_dir=tmp_path_factory.mktemp("pods"), port=0, cpus=2, memory=4 << 30,
                      engine=ENGINE) as lc:
        assert lc.engine == ENGINE
        yield lc


@pytest.fixture(scope="module")
def env(pod_cluster: LocalCluster) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OSCAR_ENDPOINT": pod_cluster.endpoint, "OSCAR_USER": pod_cluster.username,
                "OSCAR_PASSWORD": pod_cluster.password, "OSCAR_SSL_VERIFY": "false",
                # the local steps run `python3`: this interpreter (the offloaded ones run the image's)
                "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])})
    return env


@pytest.fixture()
def client(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[OscarClient]:
    for key in ("OSCAR_ENDPOINT", "OSCAR_USER", "OSCAR_PASSWORD", "OSCAR_SSL_VERIFY"):
        monkeypatch.setenv(key, env[key])
    with OscarClient(resolve_profile(None)) as c:
        yield c


def _started_in(image: str, since: float) -> set[str]:
    """Names of the containers the engine started from ``image`` since ``since`` (its own event log: the
    local cluster removes a job's container once it has read how it ended)."""
    done = subprocess.run([ENGINE, "events", "--stream=false", "--since", str(int(since) - 1), "--filter",
                           "event=start", "--format", "{{.Name}} {{.Image}}"],
                          capture_output=True, text=True, check=True, timeout=60)
    return {name for name, _, used in (line.partition(" ") for line in done.stdout.splitlines()) if used == image}


def _containers(log: str) -> set[str]:
    """The container of every job the runner's log says it submitted (``oscar-JOBNAME``)."""
    return {f"oscar-{job}" for job in re.findall(r"submitted to OSCAR cluster '[^']*' as [^/\s]+/(\S+)", log)}


def test_flood_demo_runs_its_model_in_an_image(env: dict[str, str], image: str,
                                               tmp_path: Path) -> None:
    since = time.time()
    proc = subprocess.run([sys.executable, str(EXAMPLES / "flood" / "run_demo.py"), "--size", "24",
                           "--image", image, "-o", str(tmp_path / "out"), "--verbose"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Demo finished: all checks passed." in proc.stdout and "[FAIL]" not in proc.stdout
    assert sorted(re.findall(r"\] (\w+): submitted to OSCAR", proc.stdout)) == ["model", "model", "model_2",
                                                                                 "model_3"]
    jobs = _containers(proc.stdout)
    assert len(jobs) == 4 and jobs <= _started_in(image, since), (jobs, _started_in(image, since))  # in the image
    overrides = json.loads((tmp_path / "out" / "image-overrides.json").read_text())
    assert [r["DockerRequirement"]["dockerPull"] for r in
            (o["requirements"] for o in overrides["cwltool:overrides"].values())] == [image]


def test_drought_workflow_runs_its_steps_in_an_image(env: dict[str, str], image: str,
                                                     tmp_path: Path) -> None:
    drought = EXAMPLES / "drought"
    overrides = tmp_path / "images.json"
    overrides.write_text(json.dumps({"cwltool:overrides": {
        (drought / "tools" / f"{tool}.cwl").as_uri(): {"requirements": {"DockerRequirement": {"dockerPull": image}}}
        for tool in ("indices", "forecast")}}))
    since = time.time()
    cmd = [str(BIN / "oscar-cwl"), "--no-container", "--parallel", "--offload", "hinted", "--overrides",
           str(overrides), "--outdir", str(tmp_path / "out"), str(drought / "drought.cwl"),
           "--tiles", "2", "--tile_size", "8", "--years", "20"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stderr)
    assert sorted(re.findall(r"\[job (\w+)\] submitted to OSCAR", log)) == ["forecast", "indices", "indices_2"]
    assert "[PASS] SPI reference period" in log and "[FAIL]" not in log
    jobs = _containers(log)
    assert len(jobs) == 3 and jobs <= _started_in(image, since), (jobs, _started_in(image, since))
    report = json.loads(Path(json.loads(proc.stdout)["report"]["path"]).read_text())
    assert sorted(report["tiles"]) == ["tile_00", "tile_01"] and all(c["ok"] for c in report["checks"])


def test_fdl_services_run_in_their_image(client: OscarClient, image: str, tmp_path: Path) -> None:
    """The FDL files as a user applies them, with ``image`` set to one the cluster has."""
    prepare = load_step(EXAMPLES / "flood" / "steps" / "prepare.py", "flood_example")
    (item,) = load_fdl(EXAMPLES / "flood" / "flood_service.yaml").services
    service = item.service.model_copy(update={"image": image})
    client.ensure_service(service)
    prepare.prepare(10, 42, 16, tmp_path)
    archive = tmp_path / "scenario_T10.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(EXAMPLES / "flood" / "steps" / "model.py", arcname="model.py")
        tar.add(tmp_path / "scenario_T10.npz", arcname="scenario_T10.npz")
    since = time.time()
    (result,) = Dispatcher(client).map(service.name, [[archive]], tmp_path / "out")
    assert result.ok, result.error
    assert result.job is not None and f"oscar-{result.job.name}" in _started_in(image, since)
    assert {p.name for p in result.outputs} == {"flood_T10.npz", "flood_T10.json"}
    summary = json.loads(next(p for p in result.outputs if p.name == "flood_T10.json").read_text())
    assert summary["volume_m3"]["relative_error"] < 1e-10
