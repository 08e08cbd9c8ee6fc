"""The local cluster with a real container engine (podman): each job runs in its service's image, as a pod.

The images are built offline (``tests/engines.py``: no registry here); every test skips with the reason
when no container can run on the machine. What a pod gets in OSCAR (``pkg/types/service.go``
ToPodSpec): the service's image, ``cpu``/``memory`` as the container's limits, the supervisor's environment
and the job's work directory; a container over its memory is OOMKilled; an image that cannot be pulled
leaves the pod in ``ErrImagePull``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from oscar_plugins import Dispatcher, Job, OscarClient, service_from_dict
from oscar_plugins._auth import BasicCredentials
from oscar_plugins._exceptions import JobFailed
from oscar_plugins._profiles import ClusterProfile
from oscar_plugins.local import LocalCluster
from tests import engines
from tests.local.local_helpers import wait_for

ENGINE = "podman"
_REASON = engines.reason("busybox", ENGINE)
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"no container can run here: {_REASON}")

# The cgroup the container sees: v2 (memory.max, cpu.max) or v1 (what this machine kind has).
LIMITS = """
m=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)
c=$(cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) \
$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)")
echo "$m" > "$TMP_OUTPUT_DIR/memory.txt"; echo "$c" > "$TMP_OUTPUT_DIR/cpu.txt"
"""


@pytest.fixture(scope="module")
def pod_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(data_dir=tmp_path_factory.mktemp("pod-cluster"), port=0, cpus=2, memory=2 << 30,
                      engine=ENGINE) as lc:
        yield lc


@pytest.fixture()
def client(pod_cluster: LocalCluster) -> Iterator[OscarClient]:
    profile = ClusterProfile("pods", pod_cluster.endpoint,
                             BasicCredentials(pod_cluster.username, pod_cluster.password), ssl_verify=False)
    with OscarClient(profile) as c:
        yield c


def deploy(client: OscarClient, name: str, script: str, image: str = engines.BUSYBOX, **fields: object) -> None:
    client.ensure_service(service_from_dict({"name": name, "image": image, "script": script,
                                             "output": [{"path": f"{name}/out"}], **fields}))


def one_job(client: OscarClient, service: str, tmp_path: Path, text: str = "hello") -> Path:
    """Run one job with an input file; its outputs' folder (raises the job's failure)."""
    source = tmp_path / "in.txt"
    source.write_text(text)
    [result] = Dispatcher(client).map(service, [[source]], tmp_path / "out")
    if result.error is not None:
        raise result.error
    assert result.outputs
    return result.outputs[0].parent


def containers(prefix: str) -> list[str]:
    done = subprocess.run([ENGINE, "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                          check=True, timeout=60)
    return [n for n in done.stdout.split() if n.startswith(prefix)]


def test_the_cluster_says_which_engine_runs_jobs(pod_cluster: LocalCluster) -> None:
    info = httpx.get(f"{pod_cluster.endpoint}/system/info", auth=(pod_cluster.username, pod_cluster.password),
                     verify=False, timeout=30).json()
    assert info["local_execution"] == ENGINE
    assert pod_cluster.engine == ENGINE


def test_a_job_runs_in_its_image_with_the_services_limits_and_environment(client: OscarClient,
                                                                           tmp_path: Path) -> None:
    script = LIMITS + """
cat /etc/oscar-plugins-image > "$TMP_OUTPUT_DIR/image.txt"
tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/upper.txt"
echo "$GREETING|$INPUT_FILE_PATH|$TMP_OUTPUT_DIR" > "$TMP_OUTPUT_DIR/env.txt"
echo "the script speaks"
"""
    deploy(client, "pod-limits", script, memory="96Mi", cpu="0.5",
           environment={"variables": {"GREETING": "hi from the FDL"}})
    out = one_job(client, "pod-limits", tmp_path)
    assert (out / "image.txt").read_text() == "busybox\n"  # the file only the image has
    assert (out / "upper.txt").read_text() == "HELLO"
    assert int((out / "memory.txt").read_text()) == 96 << 20
    quota, period = (out / "cpu.txt").read_text().split()
    assert int(quota) / int(period) == pytest.approx(0.5)
    greeting, input_path, output_dir = (out / "env.txt").read_text().strip().split("|")
    assert greeting == "hi from the FDL"  # the FDL's variables and the supervisor's
    assert input_path.startswith("/") and output_dir.startswith("/")
    [job] = client.list_jobs("pod-limits")
    assert "the script speaks" in Dispatcher(client).script_output(Job("pod-limits", job))
    assert not containers(f"oscar-{job}"), "the job's container is removed once it ended"


def test_a_job_over_its_memory_is_killed_and_reported_with_the_limit(client: OscarClient, tmp_path: Path) -> None:
    # through the wrapper (the client's services): the kernel kills the script, the container ends with 137
    deploy(client, "pod-oom", "dd if=/dev/zero of=/dev/null bs=300M count=1", memory="64Mi")
    with pytest.raises(JobFailed) as failed:
        one_job(client, "pod-oom", tmp_path)
    message = str(failed.value)
    assert f"OOMKilled: the script used more memory than the service's limit (64 MiB, {64 << 20} bytes)" in message
    assert "memory limit?" not in message
    # a plain OSCAR script (no wrapper): the container itself ends with 137, the cluster reports OOMKilled
    client.ensure_service(service_from_dict({"name": "pod-oom-plain", "image": engines.BUSYBOX, "memory": "64Mi",
                                             "script": "dd if=/dev/zero of=/dev/null bs=300M count=1"}), wrap=False)
    job = client.submit_job("pod-oom-plain", base64.b64encode(b"go").decode())  # as OSCAR wants it
    wait_for(lambda: client.list_jobs("pod-oom-plain")[job].get("status") == "Failed", timeout=120)
    log = client.job_log("pod-oom-plain", job)
    assert f"OOMKilled: the script used more memory than the service's limit (64 MiB, {64 << 20} bytes)" in log, log


def test_an_image_that_cannot_be_pulled_fails_the_job_with_the_engines_words(client: OscarClient,
                                                                             tmp_path: Path) -> None:
    image = "registry.oscar-plugins.invalid/nobody/none:1"
    deploy(client, "pod-nopull", "true", image=image)
    with pytest.raises(JobFailed) as failed:
        one_job(client, "pod-nopull", tmp_path)
    message = str(failed.value)
    assert "ErrImagePull" in message and image in message, message
    assert "import" in message and "--engine host" in message, message  # what to do
    assert "memory limit?" not in message
    [job] = client.list_jobs("pod-nopull")
    log = client.job_log("pod-nopull", job)
    assert f"pulling image '{image}' (podman)" in log  # the pull's progress is in the job's log


def test_a_synchronous_run_runs_in_the_image(client: OscarClient) -> None:
    deploy(client, "pod-sync", 'cat /etc/oscar-plugins-image; tr a-z A-Z < "$INPUT_FILE_PATH"')
    answer = client.run("pod-sync", "quiet words", expect="text")
    assert answer.text == "busybox\nQUIET WORDS"  # exactly the script's output


def test_concurrent_jobs_each_get_a_container_and_leave_none(client: OscarClient, tmp_path: Path) -> None:
    deploy(client, "pod-many", 'cat "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/copy.txt"; cat /etc/oscar-plugins-image '
                               '>> "$TMP_OUTPUT_DIR/copy.txt"', memory="32Mi", cpu="0.25")
    sources = []
    for i in range(8):
        sources.append(tmp_path / f"in{i}.txt")
        sources[-1].write_text(f"job {i}\n")
    results = Dispatcher(client).map("pod-many", [[s] for s in sources], tmp_path / "out")
    assert [r.error for r in results] == [None] * 8
    for i, result in enumerate(results):
        assert result.outputs[0].read_text() == f"job {i}\nbusybox\n"
    assert not containers("oscar-pod-many")


def test_deleting_a_running_job_removes_its_container(client: OscarClient, pod_cluster: LocalCluster) -> None:
    deploy(client, "pod-sleep", "echo started; sleep 300")
    job = Dispatcher(client).submit("pod-sleep", payload="x", track=False).name
    wait_for(lambda: containers(f"oscar-{job}"), timeout=60)
    client.delete_job("pod-sleep", job)
    wait_for(lambda: not containers(f"oscar-{job}"), timeout=60)


DEBIAN_REASON = engines.reason("debian", ENGINE)


@pytest.mark.skipif(DEBIAN_REASON is not None, reason=f"no Debian test image: {DEBIAN_REASON}")
def test_an_image_without_download_tools_gets_its_inputs_through_the_supervisor(client: OscarClient,
                                                                                 tmp_path: Path) -> None:
    # debian:stable-slim's kind: no curl, no wget, no python3; the supervisor downloads what it can
    script = ('for t in curl wget python3; do command -v $t; done > "$TMP_OUTPUT_DIR/tools"; '
              'cat "$OSCAR_INPUTS_DIR"/* | sha256sum | cut -c1-64 > "$TMP_OUTPUT_DIR/sum"')
    deploy(client, "pod-slim", script, image=engines.DEBIAN)
    inputs = [tmp_path / "a.bin", tmp_path / "b.bin"]
    for path in inputs:
        path.write_bytes(os.urandom(300_000))  # over the body's inline budget: by URL, unless by the supervisor
    [result] = Dispatcher(client).map("pod-slim", [inputs], tmp_path / "out")
    assert result.error is None, result.error
    out = result.outputs[0].parent
    assert (out / "tools").read_text() == ""
    assert (out / "sum").read_text().strip() == hashlib.sha256(b"".join(p.read_bytes() for p in inputs)).hexdigest()
    # over what the supervisor's manifest carries: a clear failure that names the fix
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    [failed] = Dispatcher(client).map("pod-slim", [[big]], tmp_path / "out-big")
    assert isinstance(failed.error, JobFailed)
    assert "the image has no curl, wget or python3" in str(failed.error), failed.error


@pytest.mark.parametrize("image", [engines.BUSYBOX, engines.DEBIAN])
def test_a_batch_runs_in_an_image_without_curl_each_member_apart(client: OscarClient, tmp_path: Path,
                                                                 image: str) -> None:
    # busybox (its ash, awk and find without -printf) and debian:stable-slim (dash): neither has curl or
    # python3, so the wrapper cannot upload and leaves every member's outputs (and the one status) to the
    # supervisor
    from oscar_plugins import JobSpec

    script = ('echo "member $LABEL"; cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/out.txt"\n'
              '[ "$LABEL" != 1 ] || exit 9\n')
    name = f"pod-batch-{'busybox' if image == engines.BUSYBOX else 'debian'}"
    deploy(client, name, script, image=image)
    specs = [JobSpec(payload=f"input {i}", env={"LABEL": str(i)}) for i in range(3)]
    results = Dispatcher(client).map(name, specs, tmp_path / "out", batch=3, folders=["a", "b", "c"])
    assert [r.ok for r in results] == [True, False, True] and results[1].exit_code == 9
    assert "batch member 1" in str(results[1].error) and "member 1" in results[1].error.log_tail
    assert (tmp_path / "out" / "a" / "out.txt").read_text() == "input 0"
    assert (tmp_path / "out" / "c" / "out.txt").read_text() == "input 2"
    assert len(client.list_jobs(name)) == 1


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[engines.Registry]:
    try:
        with engines.registry(tmp_path_factory.mktemp("registry")) as reg:
            yield reg
    except engines.EngineUnavailable as exc:
        pytest.skip(str(exc))


def test_an_image_is_pulled_with_its_progress_in_the_jobs_log(client: OscarClient, tmp_path: Path,
                                                              registry: engines.Registry,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    image = registry.push(ENGINE, engines.BUSYBOX, "pulled/busybox:1")  # only in the registry
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(registry.conf))  # plain HTTP on loopback
    try:
        deploy(client, "pod-pull", 'cat /etc/oscar-plugins-image > "$TMP_OUTPUT_DIR/image.txt"', image=image)
        out = one_job(client, "pod-pull", tmp_path)
        assert (out / "image.txt").read_text() == "busybox\n"
        [job] = client.list_jobs("pod-pull")
        log = client.job_log("pod-pull", job)
        assert f"pulling image '{image}' (podman)" in log
        assert "Copying blob" in log and f"pulled image '{image}'" in log, log  # the engine's own progress
    finally:
        subprocess.run([ENGINE, "rmi", "-f", image], capture_output=True, check=False, timeout=60)
