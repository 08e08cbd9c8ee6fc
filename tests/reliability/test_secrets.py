"""Sentinel secrets through the main flows: never in CLI output, DEBUG logs, errors, reprs, or files the
local cluster writes outside its credential store; and the same through the adapters: an oscar-cwl run
(output directory, research-object provenance) and an Airflow DAG run with ``dag.test()`` (task logs,
XComs, Airflow's database)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from oscar_plugins import Dispatcher, OscarClient, OscarError, service_from_dict
from oscar_plugins._auth import BasicCredentials
from oscar_plugins._profiles import ClusterProfile
from oscar_plugins.local import LocalCluster

SERVICE_SECRET = "SENTINEL-SERVICE-SECRET-4711"
PROVIDER_SECRET = "SENTINEL-PROVIDER-KEY-0815"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(data_dir=tmp_path_factory.mktemp("secrets") / "data", port=0, cpus=1.0) as lc:
        yield lc


def _secrets(lc) -> list[str]:
    return [lc.password, lc.s3_secret_key, SERVICE_SECRET, PROVIDER_SECRET]


def _files_with_secrets(root: Path, secrets: list[str], skip=lambda rel: False) -> list[str]:
    """Files under ``root`` holding one of ``secrets``, as ``relative/path: secret-prefix``."""
    leaks = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not path.is_symlink() and not skip(rel):
            blob = path.read_bytes()
            leaks += [f"{rel}: {s[:10]}..." for s in secrets if s.encode() in blob]
    return leaks


def _cluster_files_with_secrets(lc) -> list[str]:
    """Files the local cluster wrote that hold a secret, outside its credential store."""
    return _files_with_secrets(Path(lc.data_dir), _secrets(lc),
                               skip=lambda rel: rel.name == "credentials.json" or "secrets" in rel.parts)


def _profile_file(lc, path: Path, password: str) -> Path:
    path.write_text(yaml.safe_dump({"oscar": {"s": {"endpoint": lc.endpoint, "auth_user": lc.username,
                                                    "auth_password": password, "ssl_verify": False}},
                                    "default": "s"}))
    return path


def test_no_secret_leaks(cluster, tmp_path):
    lc = cluster
    token_holder = OscarClient(ClusterProfile("s", lc.endpoint, BasicCredentials(lc.username, lc.password),
                                              ssl_verify=False))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"oscar": {"s": {"endpoint": lc.endpoint, "auth_user": lc.username,
                                                   "auth_password": lc.password, "ssl_verify": False}},
                                   "default": "s"}))
    script = tmp_path / "echo.sh"
    script.write_text('cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/out"; echo "key length ${#API_KEY}"\n')
    fdl = tmp_path / "fdl.yaml"
    fdl.write_text(yaml.safe_dump({"functions": {"oscar": [{"s": {
        "name": "secretive", "image": "alpine", "script": "echo.sh",
        "environment": {"variables": {"MODE": "x"}, "secrets": {"API_KEY": SERVICE_SECRET}},
        "output": [{"storage_provider": "minio.default", "path": "secretive/out"}]}}]},
        "storage_providers": {"s3": {"aws": {"access_key": "AKIA", "secret_key": PROVIDER_SECRET,
                                             "region": "eu-west-1"}}}}))
    data = tmp_path / "in.txt"
    data.write_text("hello")
    env = {**os.environ, "OSCAR_CONFIG": str(cfg), "OSCAR_PLUGINS_STATE_DIR": str(tmp_path / "state")}
    transcript = []
    for args in (["service", "apply", str(fdl)], ["service", "get", "secretive"], ["service", "list"],
                 ["run", "secretive", str(data)], ["job", "secretive", str(data), "--wait", "-o", str(tmp_path / "o")],
                 ["logs", "secretive"], ["cluster", "show"], ["cluster", "list"],
                 ["--cluster", "s", "run", "no-such-service", str(data)]):
        out = subprocess.run([sys.executable, "-m", "oscar_plugins.cli", "-vv", *args], env=env, capture_output=True,
                             text=True, timeout=300)
        transcript.append(out.stdout + out.stderr)
    job = next(line.split()[0] for line in transcript[5].splitlines() if line.startswith("secretive-"))
    transcript.append(token_holder.job_log("secretive", job))
    # Errors and reprs.
    wrong = OscarClient(ClusterProfile("w", lc.endpoint, BasicCredentials("oscar", SERVICE_SECRET), ssl_verify=False))
    try:
        wrong.list_services()
    except OscarError as exc:
        transcript.append(str(exc) + repr(exc))
    svc = token_holder.get_service("secretive")
    transcript += [repr(token_holder), repr(token_holder.storage), repr(svc), str(svc), repr(token_holder.profile),
                   repr(lc), repr(lc.info())]
    text = "\n".join(transcript)
    assert "key length 28" in text  # the secret did reach the job, as a variable
    # and OSCAR shows it blank (create.go empties the FDL's secret values; a Kubernetes Secret keeps them)
    assert svc.environment.secrets["API_KEY"] == "" and svc.hidden_secrets == {"API_KEY"}
    for secret in _secrets(lc):
        assert secret not in text, f"a secret leaked: {secret[:10]}..."
    assert not _cluster_files_with_secrets(lc)
    secret_dir = Path(lc.data_dir) / "secrets"
    assert secret_dir.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in secret_dir.iterdir())


def test_job_cannot_see_another_services_secret(cluster, tmp_path):
    lc = cluster
    client = OscarClient(ClusterProfile("s", lc.endpoint, BasicCredentials(lc.username, lc.password),
                                        ssl_verify=False))
    client.ensure_service(service_from_dict({"name": "holder", "image": "alpine", "script": "true",
                                             "environment": {"secrets": {"API_KEY": SERVICE_SECRET}}}))
    client.ensure_service(service_from_dict({"name": "snoop", "image": "alpine", "script": "env",
                                             "output": [{"storage_provider": "minio.default", "path": "snoop/out"}]}))
    (res,) = Dispatcher(client).map("snoop", [[]], tmp_path / "o")
    assert res.ok
    log = client.job_log("snoop", res.job.name)
    assert "OSCAR_SERVICE_NAME=snoop" in log and SERVICE_SECRET not in log and lc.password not in log


# -- oscar-cwl ---------------------------------------------------------------------------------------
# A cwltool:Secrets input is CWL's service secret: it reaches the pod as a variable and an argument.
CWL_TOOL = """\
cwlVersion: v1.2
class: CommandLineTool
$namespaces: {cwltool: "http://commonwl.org/cwltool#"}
requirements:
  EnvVarRequirement: {envDef: {API_KEY: $(inputs.key)}}
hints:
  cwltool:Secrets: {secrets: [key]}
inputs: {key: string, text: File}
baseCommand: [sh, -c]
arguments:
- cat "$0" > out.txt; for v in "$API_KEY" "$1"; do printf %s "$v" | wc -c | sed "s/^ */length /"; done >> out.txt
- $(inputs.text.path)
- $(inputs.key)
outputs: {out: {type: File, outputBinding: {glob: out.txt}}}
"""
CWL_WORKFLOW = """\
cwlVersion: v1.2
class: Workflow
$namespaces: {cwltool: "http://commonwl.org/cwltool#"}
hints:
  cwltool:Secrets: {secrets: [key]}
inputs: {key: string, text: File}
outputs: {out: {type: File, outputSource: step/out}}
steps:
  step: {run: tool.cwl, in: {key: key, text: text}, out: [out]}
"""


def test_no_secret_leaks_through_oscar_cwl(cluster, tmp_path):
    """oscar-cwl --debug --provenance against a profile whose password is the sentinel, with a secret input."""
    lc = cluster
    (tmp_path / "tool.cwl").write_text(CWL_TOOL)
    (tmp_path / "wf.cwl").write_text(CWL_WORKFLOW)
    (tmp_path / "in.txt").write_text("hello\n")
    (tmp_path / "job.yml").write_text(yaml.safe_dump({"key": SERVICE_SECRET,
                                                      "text": {"class": "File", "path": "in.txt"}}))
    oscar_cwl = str(Path(sys.executable).with_name("oscar-cwl"))
    env = {**os.environ, "OSCAR_CONFIG": str(_profile_file(lc, tmp_path / "config.yaml", lc.password)),
           "OSCAR_PLUGINS_STATE_DIR": str(tmp_path / "state")}
    ok = subprocess.run([oscar_cwl, "--debug", "--provenance", str(tmp_path / "ro"), "--oscar-cluster", "s",
                         "--outdir", str(tmp_path / "out"), "wf.cwl", "job.yml"], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "submitted to OSCAR cluster 's'" in ok.stderr and "DEBUG" in ok.stderr  # offloaded, logged at DEBUG
    # The secret did reach the job, as a variable and as an argument.
    assert (tmp_path / "out" / "out.txt").read_text() == "hello\nlength 28\nlength 28\n"
    assert (tmp_path / "ro" / "metadata" / "provenance" / "primary.cwlprov.provn").is_file()
    # A refused password that is itself a sentinel: the error path, with --debug's stack traces.
    env["OSCAR_CONFIG"] = str(_profile_file(lc, tmp_path / "wrong.yaml", SERVICE_SECRET))
    refused = subprocess.run([oscar_cwl, "--debug", "--oscar-cluster", "s", "--outdir", str(tmp_path / "out2"),
                              "tool.cwl", "--key", "x", "--text", "in.txt"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "credentials were refused" in refused.stderr, refused.stderr[-3000:]
    text = ok.stdout + ok.stderr + refused.stdout + refused.stderr
    for secret in _secrets(lc):
        assert secret not in text, f"a secret leaked into oscar-cwl's output: {secret[:10]}..."
    for folder in ("out", "ro", "out2"):
        if (tmp_path / folder).exists():
            assert not _files_with_secrets(tmp_path / folder, _secrets(lc)), folder
    assert not _cluster_files_with_secrets(lc)


# -- Airflow -----------------------------------------------------------------------------------------
AIRFLOW_DAG = """\
from datetime import datetime

from airflow.sdk import DAG

from oscar_plugins.airflow.operators import (
    OscarDeployServiceOperator, OscarRunServiceOperator, OscarSubmitJobOperator,
)
from oscar_plugins.airflow.sensors import OscarOutputSensor

CONF = "{{ dag_run.conf['%s'] }}"
with DAG("oscar_secrets", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
         default_args={"retries": 0, "oscar_conn_id": "oscar_secrets"}):
    deploy = OscarDeployServiceOperator(task_id="deploy", fdl=CONF % "fdl")
    run = OscarRunServiceOperator(task_id="run", service_name="secretive", data="hello")
    job = OscarSubmitJobOperator(task_id="job", service_name="secretive", inputs=CONF % "input",
                                 output_dir=CONF % "out", poll_interval=0.5)
    outputs = OscarOutputSensor(task_id="outputs", service_name="secretive", poke_interval=0.5, timeout=60)
    refused = OscarRunServiceOperator(task_id="refused", service_name="secretive", data="x",
                                      oscar_conn_id="oscar_refused")
    deploy >> [run, job, refused]
    job >> outputs
"""
# dag.test() as tests/airflow run it; then every task state and XCom of the run, as stored.
AIRFLOW_DRIVER = """\
import json, sys
from sqlalchemy import select
from airflow.dag_processing.dagbag import DagBag
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dr = bag.get_dag("oscar_secrets").test(run_conf=json.loads(sys.argv[2]))
with create_session() as session:
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances(session=session)}
    rows = session.scalars(select(XComModel).where(XComModel.run_id == dr.run_id)).all()
    xcoms = {f"{x.task_id}.{x.key}": x.value for x in rows}
print("@@RESULT@@" + json.dumps({"states": states, "xcoms": xcoms}, default=str))
"""
# Airflow's in-process test supervisor (dag.test(), task-sdk 1.3.2: InProcessSupervisorComms.send) logs
# every message a task sends it at DEBUG, MaskSecret requests with their value included; the real
# supervisor omits their body. That line is Airflow's, written because the hook registers the secrets
# with the masker, so it is left out of the check; everything else at DEBUG is checked.
AIRFLOW_OWN_LEAK = "msg=MaskSecret(value="


def test_no_secret_leaks_through_the_airflow_provider(cluster, tmp_path):
    """A DAG run (dag.test(), DEBUG logs) whose OSCAR connection's password is the sentinel."""
    lc = cluster
    home, dags = tmp_path / "airflow", tmp_path / "dags"
    dags.mkdir()
    (dags / "oscar_secrets_dag.py").write_text(AIRFLOW_DAG)
    (tmp_path / "echo.sh").write_text('cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/out"; echo "key length ${#API_KEY}"\n')
    fdl = tmp_path / "fdl.yaml"
    fdl.write_text(yaml.safe_dump({"functions": {"oscar": [{"s": {
        "name": "secretive", "image": "alpine", "script": "echo.sh",
        "environment": {"secrets": {"API_KEY": SERVICE_SECRET}},
        "output": [{"storage_provider": "minio.default", "path": "secretive/out"}]}}]},
        "storage_providers": {"s3": {"aws": {"access_key": "AKIA", "secret_key": PROVIDER_SECRET,
                                             "region": "eu-west-1"}}}}))
    (tmp_path / "in.txt").write_text("hello")

    def conn(password: str) -> str:
        return json.dumps({"conn_type": "oscar", "host": lc.endpoint, "login": lc.username, "password": password,
                           "extra": {"ssl_verify": False}})

    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/db",
           "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
           "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "False", "OSCAR_PLUGINS_STATE_DIR": str(tmp_path / "state"),
           "AIRFLOW_CONN_OSCAR_SECRETS": conn(lc.password), "AIRFLOW_CONN_OSCAR_REFUSED": conn(SERVICE_SECRET)}
    migrate = subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    conf = {"fdl": str(fdl), "input": str(tmp_path / "in.txt"), "out": str(tmp_path / "out")}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(AIRFLOW_DRIVER), str(dags), json.dumps(conf)],
                          env=env, capture_output=True, text=True, timeout=300)
    logs = proc.stdout + proc.stderr  # dag.test() writes the task logs to the console
    lines = [x for x in proc.stdout.splitlines() if x.startswith("@@RESULT@@")]
    assert proc.returncode == 0 and len(lines) == 1, logs[-3000:]
    result = json.loads(lines[0].removeprefix("@@RESULT@@"))
    assert result["states"] == {"deploy": "success", "run": "success", "job": "success", "outputs": "success",
                                "refused": "failed"}, logs[-3000:]
    xcoms = result["xcoms"]
    assert xcoms["run.return_value"] == "hello" and len(xcoms["job.job_names"]) == 1
    assert any(key.endswith("/out") for key in xcoms["outputs.return_value"])
    # The task logs hold the job's log (the secret reached the job) and the refused task's error.
    assert "key length 28" in logs and "credentials were refused" in logs
    assert "[debug" in logs  # DEBUG was on
    checked = "\n".join(x for x in logs.splitlines() if AIRFLOW_OWN_LEAK not in x)
    stored = json.dumps(xcoms)
    for secret in _secrets(lc):
        assert secret not in checked, f"a secret leaked into the task logs: {secret[:10]}..."
        assert secret not in stored, f"a secret leaked into an XCom: {secret[:10]}..."
    # Airflow's database (XComs, rendered fields, serialized DAG), its logs folder, the task's outputs.
    assert not _files_with_secrets(home, _secrets(lc))
    assert not _files_with_secrets(tmp_path / "out", _secrets(lc))
    assert not _cluster_files_with_secrets(lc)
