"""Workflow Run RO-Crates of runs that offloaded steps to OSCAR (the ``rocrate`` package, imported on use).

Two levels, shared by every adapter:

* :func:`add_oscar_job` adds an ``OscarJob`` entity (from a :class:`~oscar_plugins.JobRecord`'s data) to
  a step's ``CreateAction`` in any ``rocrate.ROCrate``, with the record itself as a JSON file and the
  ad-hoc terms (:data:`CRATE_TERMS`, in :data:`~oscar_plugins.NAMESPACE`) defined in the crate's ``@context``
  and described by ``rdfs:Class``/``rdf:Property`` entities, as RO-Crate asks of ad-hoc terms.
  ``oscar-cwl --ro-crate`` adds them to runcrate's conversion of cwltool's research object.
* :func:`write_run_crate` writes a whole Process/Workflow Run Crate (https://w3id.org/ro/wfrun/) from a
  run's :class:`~oscar_plugins.StepRun` s: the workflow file as the main entity (a DAG file, a pipeline's
  config), one ``CreateAction`` for the run and one per step, ``OscarJob`` entities for offloaded jobs,
  and the steps' output files with their sha256. The Airflow provider and the itwinai pipeline use it::

      from oscar_plugins import check_crate_path, write_run_crate

      dest = check_crate_path("run.crate.zip")      # before the run: a bad path fails now
      write_run_crate(steps, dest, name="drought run", workflow=Path("dag.py"),
                      language=("https://airflow.apache.org/", "Apache Airflow", "3.3.2"))

``dest`` ending in ``.zip`` is a zipped crate, anything else a folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._exceptions import ConfigError
from ._provenance import NAMESPACE, StepRun, iso_time
from ._storage import sha256_file
from ._validation import output_path_problem

if TYPE_CHECKING:
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

__all__ = ["CRATE_TERMS", "PROFILES", "add_file_hashes", "add_oscar_job", "check_crate_path", "define_crate_terms",
           "write_run_crate"]

#: The ad-hoc terms of the crates (:data:`NAMESPACE` + name) and what each means.
CRATE_TERMS = {
    "OscarJob": "A job (or a synchronous run) that ran one workflow step on an OSCAR serverless cluster.",
    "oscarJob": "The OSCAR job that ran this step.",
    "oscarCluster": "The name of the cluster's profile (or connection) in the configuration of the run.",
    "oscarEndpoint": "The cluster's API endpoint (without credentials).",
    "oscarService": "The OSCAR service the job ran under (its image and resources).",
    "oscarCpu": "The CPU the job's service asked for (a Kubernetes quantity).",
    "oscarMemory": "The memory the job's service asked for (a Kubernetes quantity).",
    "oscarState": "The job's last state as the cluster reported it (Succeeded, Failed, ...).",
    "oscarExitCode": "The exit code of the step's command in the job.",
    "oscarSubmitTime": "When the job was submitted.",
    "oscarCollectTime": "When the job's outputs had been collected.",
}
#: The profiles :func:`write_run_crate` conforms to: (id, name, version); ro-crate-py adds Workflow RO-Crate's
#: own (the version it writes) when the workflow becomes the main entity.
PROFILES = (("https://w3id.org/ro/wfrun/process/0.5", "Process Run Crate", "0.5"),
            ("https://w3id.org/ro/wfrun/workflow/0.5", "Workflow Run Crate", "0.5"))
_RUN_TERMS = "https://w3id.org/ro/terms/workflow-run"
_STATUS = {"succeeded": "http://schema.org/CompletedActionStatus", "failed": "http://schema.org/FailedActionStatus"}
_INSTALL = "pip install 'oscar-plugins[provenance]' (or pip install rocrate)"
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


# -- before the run -----------------------------------------------------------------------------------
def check_crate_path(path: str | os.PathLike[str]) -> Path:
    """Check, before a run, that a crate can be written at ``path`` (``.zip``: a file, else a folder).

    Raises:
        ConfigError: rocrate is not installed; the folder it goes in does not exist or cannot be written;
            a ``.zip`` names a folder, or a folder crate names a file or a non-empty folder that is no crate
            (it would be replaced). The message names the path and what to do.
    """
    target = Path(path).expanduser().absolute()
    shown = str(path)
    if importlib.util.find_spec("rocrate") is None:
        raise ConfigError(f"RO-Crate {shown!r}: the rocrate package is not installed: {_INSTALL}")
    if target.suffix.lower() == ".zip":
        if target.is_dir():
            raise ConfigError(f"RO-Crate {shown!r} is a folder: give a file name ending in .zip, or a folder "
                              "name without .zip for a crate as a folder")
    elif target.exists() and not target.is_dir():
        raise ConfigError(f"RO-Crate {shown!r} is a file: end the name in .zip for a zipped crate, or give "
                          "a folder")
    elif target.is_dir() and any(target.iterdir()) and not (target / "ro-crate-metadata.json").is_file():
        raise ConfigError(f"RO-Crate {shown!r} is a folder with other files in it (no ro-crate-metadata.json): "
                          "it would be replaced; give a new or empty folder, or a .zip name")
    problem = output_path_problem("RO-Crate", target, shown)
    if problem:
        raise ConfigError(problem)
    return target


# -- OscarJob entities ----------------------------------------------------------------------------------
def define_crate_terms(crate: ROCrate) -> None:
    """The ad-hoc terms in the crate's context, each described as RO-Crate recommends (idempotent)."""
    from rocrate.model.contextentity import ContextEntity

    crate.metadata.extra_terms.update({term: NAMESPACE + term for term in CRATE_TERMS})
    for term, comment in CRATE_TERMS.items():
        if crate.get(NAMESPACE + term) is None:
            kind = "rdfs:Class" if term[0].isupper() else "rdf:Property"
            crate.add(ContextEntity(crate, NAMESPACE + term, properties={
                "@type": kind, "rdfs:label": term, "rdfs:comment": comment}))


def add_oscar_job(crate: ROCrate, record: Mapping[str, Any], action: Any, *, record_file: Path | None = None,
                  record_dest: str | None = None) -> ContextEntity:
    """Add the ``OscarJob`` of ``record`` (:meth:`JobRecord.as_dict` data) to ``crate`` and link it from
    ``action`` as ``oscarJob`` (a list when the action ran several). ``record_file`` (the record as JSON)
    is added at ``record_dest`` (default ``oscar/<its name>``), ``about`` the action."""
    from rocrate.model.contextentity import ContextEntity

    name = record.get("job")
    ident = f"#oscar-job-{name}" if name else f"#oscar-run-{uuid.uuid4().hex[:12]}"
    job = crate.add(ContextEntity(crate, ident, properties=_job_properties(record)))
    if action.get("containerImage") is not None:
        job["containerImage"] = action["containerImage"]
    if record_file is not None:
        entry = crate.add_file(record_file, record_dest or f"oscar/{record_file.name}", properties={
            "name": f"Where {action.get('name') or 'the step'} ran: {job['name']}",
            "encodingFormat": "application/json"})
        entry["about"] = action
        job["subjectOf"] = entry
    earlier = action.get("oscarJob")
    action["oscarJob"] = job if earlier is None else [*(earlier if isinstance(earlier, list) else [earlier]), job]
    define_crate_terms(crate)
    return job


def _job_properties(record: Mapping[str, Any]) -> dict[str, Any]:
    service, endpoint = record.get("service"), record.get("endpoint")
    label = f"OSCAR job {record['job']}" if record.get("job") else "synchronous run"
    properties = {"@type": "OscarJob", "name": record.get("job") or f"run of {service}",
                  "description": f"{label} of service {service} on {endpoint}",
                  "oscarCluster": record.get("cluster"), "oscarEndpoint": endpoint, "oscarService": service,
                  "oscarCpu": record.get("cpu") or None, "oscarMemory": record.get("memory") or None,
                  "oscarState": record.get("state"), "oscarExitCode": record.get("exit_code"),
                  "oscarSubmitTime": record.get("submitted"), "startTime": record.get("started"),
                  "endTime": record.get("finished"), "oscarCollectTime": record.get("collected")}
    return {k: v for k, v in properties.items() if v is not None}


def add_file_hashes(action: Any) -> None:
    """``sha256`` on the ``File`` entities an action used and produced whose source is on this machine."""
    for key in ("object", "result"):
        value = action.get(key) or []
        for entity in value if isinstance(value, list) else [value]:
            source = getattr(entity, "source", None)
            if "File" in _types(entity) and source is not None and os.path.isfile(source):
                entity["sha256"] = sha256_file(Path(source))


def _types(entity: Any) -> list[str]:
    kind = entity.get("@type") if hasattr(entity, "get") else None
    return [kind] if isinstance(kind, str) else list(kind or [])


# -- a whole run ----------------------------------------------------------------------------------------
def write_run_crate(steps: Sequence[StepRun], dest: str | os.PathLike[str], *, name: str, workflow: Path,
                    language: tuple[str, str, str | None], description: str = "", workflow_name: str | None = None,
                    started: float | None = None, finished: float | None = None) -> Path:
    """Write the Workflow Run RO-Crate of a run at ``dest`` (``.zip``, else a folder; replaced).

    Args:
        steps: the run's steps, in order; their ``outputs`` are copied into the crate (``outputs/<step>/``).
        name: the crate's name (``"run of <workflow>"``).
        workflow: the workflow's file (a DAG file, a pipeline's config), the crate's main entity.
        language: the workflow language as (identifier URL, name, version).
        started, finished: the run's times (default: its steps' first start and last end).

    Raises:
        ConfigError: the path is not usable (see :func:`check_crate_path`).
    """
    from rocrate.model.computerlanguage import ComputerLanguage
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    target = check_crate_path(dest)
    crate = ROCrate(gen_preview=False)
    crate.metadata.extra_contexts.append(_RUN_TERMS)
    crate.root_dataset["conformsTo"] = [crate.add(ContextEntity(crate, ident, properties={
        "@type": "CreativeWork", "name": title, "version": version})) for ident, title, version in PROFILES]
    crate.root_dataset["name"] = name
    crate.root_dataset["description"] = description or name
    lang_id, lang_name, lang_version = language
    lang = crate.add(ComputerLanguage(crate, lang_id, properties={
        "name": lang_name, "url": lang_id, **({"version": lang_version} if lang_version else {})}))
    main = crate.add_workflow(workflow, workflow.name, main=True, lang=lang, properties={
        "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow"], "name": workflow_name or workflow.stem})
    with tempfile.TemporaryDirectory(prefix="oscar-crate-") as tmp:
        results = []
        for step in steps:
            results += _add_step(crate, step, main, Path(tmp))
        times = [t for s in steps for t in (s.started, s.finished) if t is not None]
        failed = any(s.status == "failed" for s in steps)
        _add(crate, "#run", "CreateAction", {
            "name": f"Run of {workflow_name or workflow.stem}", "instrument": main,
            "startTime": iso_time(started if started is not None else min(times, default=None)),
            "endTime": iso_time(finished if finished is not None else max(times, default=None)),
            "actionStatus": {"@id": _STATUS["failed" if failed else "succeeded"]},
            "result": results or None})
        _write(crate, target)
    return target


def _add_step(crate: ROCrate, step: StepRun, workflow: Any, tmp: Path) -> list[Any]:
    slug = _SLUG.sub("_", step.name).strip("_") or "step"
    tool = _add(crate, f"#step-{slug}", "SoftwareApplication", {
        "name": step.name, "description": f"{step.tool or 'step'} ({'offloaded to OSCAR' if step.jobs else 'local'})"})
    parts = workflow.get("hasPart") or []
    workflow["hasPart"] = [*(parts if isinstance(parts, list) else [parts]), tool]
    results = []
    for i, path in enumerate(p for p in step.outputs if Path(p).is_file()):
        dest = f"outputs/{slug}/{Path(path).name}"
        if crate.get(dest) is not None:
            dest = f"outputs/{slug}/{i}-{Path(path).name}"
        results.append(crate.add_file(path, dest, properties={
            "name": Path(path).name, "contentSize": Path(path).stat().st_size, "sha256": sha256_file(Path(path))}))
    status = _STATUS.get(step.status)
    action = _add(crate, f"#run-{slug}", "CreateAction", {
        "name": f"Run of {step.name}", "instrument": tool, "startTime": iso_time(step.started),
        "endTime": iso_time(step.finished), "actionStatus": {"@id": status} if status else None,
        "description": None if status else f"status: {step.status}", "result": results or None})
    for record in step.jobs:
        record_file = tmp / f"{slug}-{record.get('job') or uuid.uuid4().hex[:12]}.json"
        record_file.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        add_oscar_job(crate, record, action, record_file=record_file,
                      record_dest=f"oscar/{record.get('job') or record_file.stem}.json")
    return results


def _add(crate: ROCrate, ident: str, kind: str, properties: Mapping[str, Any]) -> Any:
    from rocrate.model.contextentity import ContextEntity

    entity = crate.add(ContextEntity(crate, ident, properties={"@type": kind}))
    for key, value in properties.items():
        if value is not None:
            entity[key] = value
    return entity


def _write(crate: ROCrate, target: Path) -> None:
    """Write beside ``target`` first, then put it in place, so a failed write leaves the old crate whole."""
    partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        if target.suffix.lower() == ".zip":
            crate.write_zip(partial)
            os.replace(partial, target)
        else:
            crate.write(partial)
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(partial, target)
    finally:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
