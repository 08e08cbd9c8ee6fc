"""``--provenance`` and ``--ro-crate`` with real cwltool on the local cluster: where each offloaded step ran,
recorded in the CWLProv research object and in a Workflow Run RO-Crate.

The crate is checked with ro-crate-py's own model (``ROCrate`` re-reads it) against the Workflow Run Crate
profile's main rules. The profile validator (``roc-validator`` on PyPI) is not used: its checks load the
crate's JSON-LD ``@context`` documents from w3id.org, which a machine without internet cannot reach, and it
needs rdflib 7.3+ where cwltool's stack here has rdflib 6.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import bagit
import pytest
from prov.model import PROV_ATTR_ACTIVITY, PROV_ATTR_AGENT, ProvAgent, ProvAssociation, ProvDocument
from rocrate.rocrate import ROCrate

from tests.reliability.catalogue import expect

from .conftest import BIN

pytestmark = pytest.mark.slow

WORKFLOW_RUN_CRATE = "https://w3id.org/ro/wfrun/workflow/"  # + the version runcrate writes
NAMESPACE = "https://oscar-plugins.readthedocs.io/cwl#"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture()
def fruit(tmp_path: Path) -> Path:
    path = tmp_path / "fruit.txt"
    path.write_text("pear\napple\nfig\n")
    return path


def _records(ro: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((ro / "metadata" / "oscar").glob("*.json"))]


def _one(record, attribute) -> str:
    [value] = record.get_attribute(attribute)
    return value.uri


def _entity_ids(value) -> list[str]:
    return [v.id for v in (value if isinstance(value, list) else [value])]


def test_an_offloaded_step_is_recorded_in_the_research_object_and_the_crate(oscar_cwl, client, local_cluster,
                                                                           fruit, tmp_path):
    ro, crate_zip = tmp_path / "ro", tmp_path / "run.crate.zip"
    run = oscar_cwl("--provenance", str(ro), "--ro-crate", str(crate_zip), "--oscar-keep-jobs", "prov-wf.cwl",
                    "--file", str(fruit))
    assert run.code == 0, run.stderr
    output = Path(run.out["out"]["path"])
    assert output.read_text() == "APPLE\nFIG\nPEAR\n"

    # the research object: one record, for the offloaded step only (prepare stays local)
    [record] = _records(ro)
    assert record["step"] == "heavy" and record["cluster"] and record["endpoint"] == local_cluster.endpoint
    service = client.get_service(record["service"])
    assert record["job"] in client.list_jobs(record["service"])  # the job the cluster ran (kept: --oscar-keep-jobs)
    assert (record["image"], record["cpu"], record["memory"]) == (service.image, "0.5", "128Mi")
    assert all(record[k] for k in ("submitted", "started", "finished", "collected"))
    assert (record["state"], record["exit_code"], record["status"]) == ("Succeeded", 0, "success")
    [staged] = record["inputs"]
    assert staged["sha256"] == _sha256(b"apple\nfig\npear\n")  # what prepare wrote and the job received
    assert record["outputs"] == [{"path": "upper.txt", "size": output.stat().st_size,
                                  "sha256": _sha256(output.read_bytes())}]

    # ... tied to the step's activity: an annotation in the manifest, a PROV agent with the OSCAR job
    manifest = json.loads((ro / "metadata" / "manifest.json").read_text())
    assert {"about": record["activity"], "content": [f"oscar/{record['job']}.json"]} in [
        {k: a.get(k) for k in ("about", "content")} for a in manifest["annotations"]]
    document = ProvDocument.deserialize(str(ro / "metadata" / "provenance" / "primary.cwlprov.json"), format="json")
    agents = [a for a in document.get_records(ProvAgent)
              if [str(v) for k, v in a.attributes if k.uri == NAMESPACE + "job"] == [record["job"]]]
    assert len(agents) == 1
    associations = {(_one(r, PROV_ATTR_ACTIVITY), _one(r, PROV_ATTR_AGENT))
                    for r in document.get_records(ProvAssociation)}
    assert (record["activity"], agents[0].identifier.uri) in associations
    # ... and the bag still validates (manifests, tag manifests, CWLProv's own rules)
    bagit.Bag(str(ro)).validate()
    check = subprocess.run([str(BIN / "cwlprov"), "-d", str(ro), "validate"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    # the crate, re-read by ro-crate-py
    crate = ROCrate(crate_zip)
    assert any(p.startswith(WORKFLOW_RUN_CRATE) for p in _entity_ids(crate.root_dataset["conformsTo"]))
    assert "ComputationalWorkflow" in crate.mainEntity.type
    actions = {a["name"].rsplit("/", 1)[-1]: a for a in crate.get_by_type("CreateAction")}
    assert actions["packed.cwl#main"]["instrument"].id == crate.mainEntity.id
    assert actions["prepare"].get("oscarJob") is None  # ran here
    heavy = actions["heavy"]
    job = heavy["oscarJob"]
    assert (job.type, job["name"], job["oscarService"], job["oscarEndpoint"], job["oscarCpu"], job["oscarMemory"]) == (
        "OscarJob", record["job"], record["service"], record["endpoint"], "0.5", "128Mi")
    assert job["containerImage"].id == heavy["containerImage"].id
    assert job["subjectOf"].id == f"oscar/{record['job']}.json" and job["subjectOf"]["about"].id == heavy.id
    [produced] = heavy["result"]
    [used] = heavy["object"]
    assert (produced["sha256"], used["sha256"]) == (record["outputs"][0]["sha256"], staged["sha256"])
    assert crate.dereference(NAMESPACE + "oscarJob")["rdfs:comment"]  # the ad-hoc terms are described
    metadata = json.loads(zipfile.ZipFile(crate_zip).read("ro-crate-metadata.json"))
    assert metadata["@context"][-1]["oscarJob"] == NAMESPACE + "oscarJob"

    # no credential anywhere in the research object or the crate
    secrets = [local_cluster.password, local_cluster.s3_secret_key]
    files = [p for p in ro.rglob("*") if p.is_file()]
    blobs = [p.read_bytes() for p in files] + [zipfile.ZipFile(crate_zip).read(n)
                                               for n in zipfile.ZipFile(crate_zip).namelist()]
    assert len(blobs) > 20
    assert not [s for s in secrets for b in blobs if s.encode() in b]


def test_ro_crate_alone_makes_a_folder_crate(oscar_cwl, fruit, tmp_path):
    crate_dir = tmp_path / "crate"
    run = oscar_cwl("--ro-crate", str(crate_dir), "prov-wf.cwl", "--file", str(fruit))
    assert run.code == 0, run.stderr
    crate = ROCrate(crate_dir)
    [job] = crate.get_by_type("OscarJob")
    assert (crate_dir / job["subjectOf"].id).is_file()
    assert "--provenance" not in run.stderr  # a temporary research object, not the user's business


def test_a_run_runcrate_cannot_convert_keeps_its_outputs_and_fails(oscar_cwl, tmp_path):
    # runcrate refuses ExpressionTool steps: the run's outputs are there, the missing crate is an error
    run = oscar_cwl("--offload", "hinted", "--ro-crate", str(tmp_path / "c.zip"), "mixed-wf.cwl", "--name", "x")
    assert run.code == 1, run.stderr
    assert "could not write the RO-Crate" in run.stderr and "ExpressionTool" in run.stderr
    assert "--provenance DIR to keep" in run.stderr and "Traceback" not in run.stderr
    assert Path(run.out["out"]["path"]).read_text() == "X-PREPARED\n"
    assert not (tmp_path / "c.zip").exists()


@pytest.mark.parametrize("option", ["--provenance", "--ro-crate"])
@pytest.mark.parametrize("where", ["missing-folder", "under-a-file"])
def test_a_path_that_cannot_be_written_fails_before_any_job(oscar_cwl, fruit, tmp_path, option, where):
    (tmp_path / "a-file").write_text("")
    parent = tmp_path / ("no-such-folder" if where == "missing-folder" else "a-file")
    target = parent / ("out.crate.zip" if option == "--ro-crate" else "ro")
    run = oscar_cwl(option, str(target), "prov-wf.cwl", "--file", str(fruit))
    assert run.code == 2, run.stderr
    assert str(target) in run.stderr and str(parent) in run.stderr
    assert expect("cwl-provenance-path") in run.stderr
    assert "submitted to OSCAR" not in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "oscar-out").exists()  # nothing ran
