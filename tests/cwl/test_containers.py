"""``oscar-cwl`` with images to build, load or import (``dockerFile``, ``dockerLoad``, ``dockerImport``).

A real OSCAR cluster pulls every image from a registry, so there such a tool is unsupported (exit 33,
with the fix). A local cluster that runs jobs in images on this machine (podman) takes them: oscar-cwl
makes the image in that engine, once, and the step runs in it. Images are built offline from the busybox
test image (``tests/engines.py``); every test skips with the reason where no container can run.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from oscar_plugins.local import LocalCluster
from tests import engines

from .conftest import BIN, Run, _run

ENGINE = "podman"
_REASON = engines.reason("busybox", ENGINE)
pytestmark = [
    pytest.mark.skipif(_REASON is not None, reason=f"no container can run here: {_REASON}"),
    pytest.mark.skipif(os.environ.get("OSCAR_PLUGINS_LOCAL_EXECUTION") == "supervisor",
                       reason="the real supervisor runs jobs on the host, without the engine (docs/CONTAINERS.md)"),
]

TOOL = """cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement:
{requirement}
inputs: []
baseCommand: [cat, /etc/oscar-plugins-image]
stdout: out.txt
outputs:
  out: {{type: stdout}}
"""


@pytest.fixture(scope="module")
def pod_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with LocalCluster(data_dir=tmp_path_factory.mktemp("cwl-pods"), port=0, cpus=2, memory=2 << 30,
                      engine=ENGINE) as lc:
        yield dict(os.environ, OSCAR_ENDPOINT=lc.endpoint, OSCAR_USER=lc.username, OSCAR_PASSWORD=lc.password,
                   OSCAR_SSL_VERIFY="false")


def _tool(tmp_path: Path, requirement: str) -> Path:
    path = tmp_path / "tool.cwl"
    path.write_text(TOOL.format(requirement="\n".join(f"    {line}" for line in requirement.splitlines())))
    return path


def _oscar_cwl(tool: Path, env: dict[str, str], tmp_path: Path) -> Run:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return _run([str(BIN / "oscar-cwl"), "--offload", "all", "--outdir", str(tmp_path / "out"), str(tool)], env,
                tmp_path, 600)


def _rmi(*images: str) -> None:
    if images:
        subprocess.run([ENGINE, "rmi", "-f", *images], capture_output=True, check=False, timeout=120)


def _images() -> set[str]:
    done = subprocess.run([ENGINE, "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True,
                          check=True, timeout=60)
    return set(done.stdout.split())


def test_a_dockerfile_is_built_in_the_local_engine_and_the_step_runs_in_it(pod_env: dict[str, str],
                                                                           tmp_path: Path) -> None:
    tag = "localhost/oscar-plugins-test-built:1"
    _rmi(tag)
    tool = _tool(tmp_path, f"dockerFile: |\n  FROM {engines.BUSYBOX}\n  RUN echo built-by-oscar-cwl > "
                           f"/etc/oscar-plugins-image\ndockerImageId: {tag}")
    try:
        run = _oscar_cwl(tool, pod_env, tmp_path)
        assert run.code == 0, run.stderr[-3000:]
        assert Path(run.out["out"]["path"]).read_text() == "built-by-oscar-cwl\n"
        assert f"building image {tag} with podman (dockerFile)" in run.stderr
        again = _oscar_cwl(tool, pod_env, tmp_path / "again")  # built once: the second run uses it
        assert again.code == 0 and "building image" not in again.stderr, again.stderr[-3000:]
    finally:
        _rmi(tag)


def test_a_docker_archive_is_loaded(pod_env: dict[str, str], tmp_path: Path) -> None:
    archive = tmp_path / "busybox.tar"
    subprocess.run([ENGINE, "save", "-o", str(archive), engines.BUSYBOX], check=True, capture_output=True,
                   timeout=120)
    tool = _tool(tmp_path, f"dockerLoad: {archive}")
    before = _images()
    try:
        run = _oscar_cwl(tool, pod_env, tmp_path)
        assert run.code == 0, run.stderr[-3000:]
        assert Path(run.out["out"]["path"]).read_text() == "busybox\n"
        assert f"loading image {archive} into podman (dockerLoad)" in run.stderr
        assert [i for i in _images() - before if i.startswith("localhost/oscar-cwl-")]  # tagged by its digest
    finally:
        _rmi(*(_images() - before))


def test_a_root_file_system_is_imported(pod_env: dict[str, str], tmp_path: Path) -> None:
    tree = tmp_path / "rootfs.tar"
    made = subprocess.run([ENGINE, "create", engines.BUSYBOX, "true"], capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()
    try:
        subprocess.run([ENGINE, "export", "-o", str(tree), made], check=True, capture_output=True, timeout=120)
    finally:
        subprocess.run([ENGINE, "rm", "-f", made], capture_output=True, check=False, timeout=60)
    tag = "localhost/oscar-plugins-test-imported:1"
    tool = _tool(tmp_path, f"dockerImport: {tree}\ndockerImageId: {tag}")
    try:
        run = _oscar_cwl(tool, pod_env, tmp_path)
        assert run.code == 0, run.stderr[-3000:]
        assert Path(run.out["out"]["path"]).read_text() == "busybox\n"
        assert f"importing {tree} into podman as {tag} (dockerImport)" in run.stderr
    finally:
        _rmi(tag)


def test_a_broken_dockerfile_fails_with_the_engines_words(pod_env: dict[str, str], tmp_path: Path) -> None:
    tool = _tool(tmp_path, f"dockerFile: |\n  FROM {engines.BUSYBOX}\n  RUN exit 7")
    run = _oscar_cwl(tool, pod_env, tmp_path)
    assert run.code == 1, run.stderr[-3000:]
    assert "with podman failed" in run.stderr and "exit" in run.stderr, run.stderr[-3000:]


SCATTER = """cwlVersion: v1.2
class: Workflow
requirements:
  ScatterFeatureRequirement: {{}}
inputs:
  big: File
  n: int[]
outputs:
  out:
    type: File[]
    outputSource: count/out
steps:
  count:
    run:
      class: CommandLineTool
      requirements:
        DockerRequirement: {{dockerPull: "{image}"}}
      inputs:
        big: File
        n: int
      baseCommand: [sh, -c, 'wc -c < "$0"; echo "$1"']
      arguments: [$(inputs.big.path), $(inputs.n)]
      stdout: out.txt
      outputs:
        out: {{type: stdout}}
    in: {{big: big, n: n}}
    scatter: n
    out: [out]
"""


def test_an_image_without_download_tools_gets_large_inputs_inside_the_job(pod_env: dict[str, str],
                                                                         tmp_path: Path) -> None:
    """debian:stable-slim has no curl, wget or python3: the first job says so (exit 69), and from then on
    the image's jobs carry every input inside them (delivered through the supervisor)."""
    engines.ready("debian", ENGINE)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(300_000))  # over the 64 KiB a file travels inline by default
    wf = tmp_path / "wf.cwl"
    wf.write_text(SCATTER.format(image=engines.DEBIAN))
    tmp_path.joinpath("job.yml").write_text(f"big: {{class: File, path: {big}}}\nn: [1, 2, 3]\n")
    run = _run([str(BIN / "oscar-cwl"), "--offload", "all", "--outdir", str(tmp_path / "out"), str(wf),
                str(tmp_path / "job.yml")], pod_env, tmp_path, 600)
    assert run.code == 0, run.stderr[-3000:]
    assert [Path(o["path"]).read_text() for o in run.out["out"]] == [f"300000\n{n}\n" for n in (1, 2, 3)]
    again = run.stderr.count("has no curl, wget or python3 to download inputs")
    assert 1 <= again <= 3, run.stderr[-3000:]  # jobs already in flight learn it themselves; none fails


def test_inputs_too_large_to_travel_inside_the_job_name_the_fix(pod_env: dict[str, str], tmp_path: Path) -> None:
    engines.ready("debian", ENGINE)
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        fh.truncate(17 << 20)  # over the 16 MiB that may travel inside a job
    wf = tmp_path / "wf.cwl"
    wf.write_text(SCATTER.format(image=engines.DEBIAN))
    tmp_path.joinpath("job.yml").write_text(f"big: {{class: File, path: {big}}}\nn: [1]\n")
    run = _run([str(BIN / "oscar-cwl"), "--offload", "all", "--outdir", str(tmp_path / "out"), str(wf),
                str(tmp_path / "job.yml")], pod_env, tmp_path, 600)
    assert run.code == 1, run.stderr[-3000:]
    assert "too much to travel inside the job, and the image has no curl, wget or python3" in run.stderr
    assert "add one to the image" in run.stderr


def test_a_cluster_without_an_engine_refuses_with_the_fix(cluster_env: dict[str, str], tmp_path: Path) -> None:
    """The session's host-mode cluster stands for a real one here: it cannot take an image built locally."""
    tool = _tool(tmp_path, f"dockerFile: |\n  FROM {engines.BUSYBOX}")
    run = _oscar_cwl(tool, cluster_env, tmp_path)
    assert run.code == 33, run.stderr[-3000:]
    assert "build and push the image, then give it as dockerPull" in run.stderr
    assert "oscar-plugins local up --engine podman" in run.stderr
