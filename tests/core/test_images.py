"""Reading an image's ENTRYPOINT without pulling it: from a real registry (Debian's docker-registry on
loopback, images pushed by podman), and from the local engine. Skipped with the reason where neither runs."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from oscar_plugins._images import ImageInspector, parse_reference
from tests import engines


@pytest.mark.parametrize(("image", "parts"), [
    ("python:3-slim", ("docker.io", "library/python", "3-slim")),
    ("docker.io/bash:4.4", ("docker.io", "library/bash", "4.4")),
    ("alpine", ("docker.io", "library/alpine", "latest")),
    ("user/img", ("docker.io", "user/img", "latest")),
    ("ghcr.io/intertwin-eu/itwinai:torch-slim-latest", ("ghcr.io", "intertwin-eu/itwinai", "torch-slim-latest")),
    ("127.0.0.1:5000/library/bash:4.4", ("127.0.0.1:5000", "library/bash", "4.4")),
    ("localhost/x/y@sha256:abc", ("localhost", "x/y", "sha256:abc")),
])
def test_references_read_as_docker_reads_them(image: str, parts: tuple[str, str, str]) -> None:
    assert parse_reference(image) == parts


@pytest.mark.parametrize("image", ["", "two words", "UPPER/case:1", "quay.io/:tag"])
def test_what_is_no_image_reference_is_refused(image: str) -> None:
    with pytest.raises(ValueError, match="not an image reference"):
        parse_reference(image)


_REASON = engines.reason("bash", "podman")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[engines.Registry]:
    if _REASON:
        pytest.skip(f"no container can run here: {_REASON}")
    try:
        with engines.registry(tmp_path_factory.mktemp("registry")) as reg:
            yield reg
    except engines.EngineUnavailable as exc:
        pytest.skip(str(exc))


def test_the_entrypoint_comes_from_the_registry(registry: engines.Registry) -> None:
    bash = registry.push("podman", engines.BASH, "library/bash:4.4")
    plain = registry.push("podman", engines.BUSYBOX, "test/busybox:1")
    inspector = ImageInspector()  # a remote cluster: no engine here to ask
    assert inspector.entrypoint(bash) == ["docker-entrypoint.sh"]
    assert inspector.entrypoint(plain) == []
    assert inspector.entrypoint(f"{registry.host}/test/missing:1") is None  # unknown: the caller runs as is


def test_a_manifest_list_resolves_to_linux_amd64(registry: engines.Registry, tmp_path: Path) -> None:
    name = f"{registry.host}/test/multi:1"
    env = {"CONTAINERS_REGISTRIES_CONF": str(registry.conf), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    subprocess.run(["podman", "manifest", "rm", name], capture_output=True, check=False)
    for cmd in (["podman", "manifest", "create", name],
                ["podman", "manifest", "add", name, f"containers-storage:{engines.BASH}"],
                ["podman", "manifest", "push", "--all", name, f"docker://{name}"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=300)
        assert done.returncode == 0, done.stderr
    subprocess.run(["podman", "manifest", "rm", name], capture_output=True, check=False)
    assert ImageInspector().entrypoint(name) == ["docker-entrypoint.sh"]


def test_the_local_engine_answers_first() -> None:
    if _REASON:
        pytest.skip(f"no container can run here: {_REASON}")
    inspector = ImageInspector("podman")
    assert inspector.entrypoint(engines.BASH) == ["docker-entrypoint.sh"]
    assert inspector.entrypoint(engines.DEBIAN) == []
