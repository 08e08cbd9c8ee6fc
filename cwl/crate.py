"""``--ro-crate``: a Workflow Run RO-Crate of an ``oscar-cwl`` run, with where each offloaded step ran.

runcrate (``runcrate.convert.ProvCrateBuilder``) turns cwltool's CWLProv research object into a Workflow
Run RO-Crate (https://w3id.org/ro/wfrun/workflow/, the profile version runcrate writes): the workflow, its
tools, one ``CreateAction`` per step run with its inputs and outputs, and the ``ContainerImage`` each ran in.
:func:`add_offload_records` then adds, for every record of :mod:`oscar_plugins.cwl.provenance`:

* an ``OscarJob`` entity, linked from the step's action as ``oscarJob``: the job's name, cluster, endpoint,
  service, resources and times, and the record itself, ``oscar/<job>.json`` (with the sha256 of every staged
  input and collected output), by the core's :func:`oscar_plugins.add_oscar_job` (which the Airflow and
  itwinai crates use too: the same terms, defined in the crate's ``@context``);
* ``sha256`` on the ``File`` entities the action used and produced (:func:`oscar_plugins.add_file_hashes`).

:func:`check_output_path` and :func:`prepare` check the paths before any job runs.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from oscar_plugins import CRATE_TERMS, add_file_hashes, add_oscar_job, output_path_problem

from .provenance import RECORDS_FOLDER

if TYPE_CHECKING:
    import argparse

    from rocrate.rocrate import ROCrate

__all__ = ["TERMS", "add_offload_records", "check_output_path", "export_crate", "finish", "prepare"]

_logger = logging.getLogger("cwltool")

#: The ad-hoc terms of the crate (the core's, in the ``oscar:Offload`` hint's namespace) and what each means.
TERMS = CRATE_TERMS
_INSTALL = ("pip install 'oscar-plugins[cwl,provenance]' && pip install --no-deps 'runcrate>=0.6.2,<0.7' "
            "(see cwl/README.md, 'Provenance')")


class CrateError(Exception):
    """The crate could not be written; the message says why and what to do."""


def check_output_path(path: str, option: str, *, kind: str) -> str | None:
    """Whether ``path`` (a ``kind`` of ``"folder"`` or ``"file"``) can be written; the problem, or None.

    Done before the run, so a path that cannot be written fails before any job runs: its folder must
    exist and take a new file (tried, as ``os.access`` cannot see read-only mounts or ACLs)."""
    target = Path(path).expanduser().absolute()
    folder = target.parent
    if target.exists() and (target.is_dir() != (kind == "folder")):
        what = "a folder" if target.is_dir() else "a file"
        return f"{option} {path!r} is {what}: give the path of a {kind} (it is replaced)"
    if folder.exists() and not folder.is_dir():
        return f"{option} {path!r}: {str(folder)!r} is a file, not a folder: choose another path"
    return output_path_problem(option, target, path)
    return None


def prepare(args: argparse.Namespace) -> str | None:
    """Check ``--provenance`` and ``--ro-crate`` before the run; the problem, or None.

    ``--ro-crate`` without ``--provenance`` gets a temporary research object (removed by :func:`finish`)."""
    crate = getattr(args, "ro_crate", None)
    if args.provenance:
        problem = check_output_path(args.provenance, "--provenance", kind="folder")
        if problem:
            return problem
    if not crate:
        return None
    problem = check_output_path(crate, "--ro-crate", kind="file" if crate.lower().endswith(".zip") else "folder")
    if problem:
        return problem
    if args.provenance and Path(crate).absolute() == Path(args.provenance).absolute():
        return "--ro-crate and --provenance name the same path: give the crate a path of its own"
    if importlib.util.find_spec("runcrate") is None:
        return f"--ro-crate needs the runcrate package, which is not installed: {_INSTALL}"
    if not args.provenance:
        args.provenance = str(Path(tempfile.gettempdir(), f"oscar-cwl-ro-{uuid.uuid4().hex}"))  # made by cwltool
        args.oscar_temporary_ro = True
    return None


def finish(args: argparse.Namespace, code: int) -> int:
    """After the run: export the crate ``--ro-crate`` asked for; returns the exit code."""
    crate = getattr(args, "ro_crate", None)
    research_object = Path(args.provenance) if args.provenance else None
    try:
        if crate and research_object is not None and (research_object / "bagit.txt").is_file():
            export_crate(research_object, Path(crate))
            _logger.info("[provenance] Workflow Run RO-Crate saved to %s", crate)
        elif crate:
            _logger.error("no research object was written, so no RO-Crate either (see the errors above)")
            code = code or 1
    except CrateError as exc:
        keep = " (add --provenance DIR to keep the research object)" if getattr(args, "oscar_temporary_ro", False) \
            else ""
        _logger.error("could not write the RO-Crate %s: %s%s", crate, exc, keep)
        code = code or 1
    finally:
        if getattr(args, "oscar_temporary_ro", False) and research_object is not None:
            shutil.rmtree(research_object, ignore_errors=True)
    return code


def export_crate(research_object: Path, dest: Path) -> Path:
    """Write the Workflow Run RO-Crate of a CWLProv ``research_object`` at ``dest`` (a ``.zip``, else a
    folder; either is replaced), with the OSCAR records of its offloaded steps.

    Raises:
        CrateError: runcrate is missing, or could not read the research object.
    """
    try:
        from runcrate.convert import ProvCrateBuilder
    except ImportError:
        raise CrateError(f"runcrate is not installed: {_INSTALL}") from None
    try:
        crate = ProvCrateBuilder(research_object).build()
    except Exception as exc:  # runcrate raises bare RuntimeErrors, KeyErrors... on what it cannot convert
        raise CrateError(f"runcrate could not convert the research object: {type(exc).__name__}: {exc}") from exc
    add_offload_records(crate, research_object)
    if dest.suffix.lower() == ".zip":
        crate.write_zip(dest)
    else:
        if dest.is_dir():
            shutil.rmtree(dest)
        crate.write(dest)
    return dest


def add_offload_records(crate: ROCrate, research_object: Path) -> int:
    """Add the OSCAR records of ``research_object`` to ``crate`` (built from it); returns how many."""
    actions = {str(a.get("name")): a for a in crate.get_by_type("CreateAction")}
    count = 0
    for path in sorted(Path(research_object, RECORDS_FOLDER).glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        action = actions.get(str(record.get("label")))
        if action is None:
            _logger.warning("no step run in the crate for the OSCAR record %s (label %r)", path.name,
                            record.get("label"))
            continue
        job = add_oscar_job(crate, record, action, record_file=path, record_dest=f"oscar/{path.name}")
        job["subjectOf"]["name"] = f"Where step {record['step']} ran: OSCAR job {record['job']}"
        add_file_hashes(action)
        count += 1
    return count
