"""The ``oscar:Offload`` hint: per-step offload control written in the CWL document itself.

Namespace (stable, documented in ``cwl/README.md``)::

    $namespaces:
      oscar: https://oscar-plugins.readthedocs.io/cwl#
    hints:
      oscar:Offload:
        cluster: my-cluster      # an oscar-cli profile; default: the runner's --oscar-cluster
        cpu: "4"                 # service cpu (overrides ResourceRequirement)
        memory: 16Gi             # service memory (overrides ResourceRequirement); a number means MiB
        gpu: true                # enable_gpu
        interLinkNode: vk-hpc    # run on an interLink virtual node (HPC offload)
        batch: 20                # run up to 20 of this tool's jobs (scatter branches) in one OSCAR job
        offload: false           # keep this step local even with --offload all

Everything here is pure: parsing the hint and the extension schema text that makes ``--strict``
validation accept it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

__all__ = ["NAMESPACE", "OFFLOAD", "HintError", "OffloadHint", "extension_schema", "parse_offload_hint"]

NAMESPACE = "https://oscar-plugins.readthedocs.io/cwl#"
OFFLOAD = NAMESPACE + "Offload"

_OFFLOAD_RECORD: dict[str, Any] = {
    "name": OFFLOAD,
    "type": "record",
    "inVocab": False,
    "extends": "cwl:ProcessRequirement",
    "doc": "Run this CommandLineTool (or every tool of this step) on an OSCAR cluster.",
    "fields": [
        {"name": "class", "type": "string", "doc": "Always 'Offload'",
         "jsonldPredicate": {"_id": "@type", "_type": "@vocab"}},
        {"name": NAMESPACE + "offload", "type": ["null", "boolean", "cwl:Expression"],
         "doc": "false keeps the step on the local machine"},
        {"name": NAMESPACE + "cluster", "type": ["null", "string"], "doc": "oscar-cli profile name"},
        {"name": NAMESPACE + "cpu", "type": ["null", "string", "float", "int"], "doc": "service cpu"},
        {"name": NAMESPACE + "memory", "type": ["null", "string", "long", "int"],
         "doc": "service memory: a Kubernetes quantity, or a number of MiB"},
        {"name": NAMESPACE + "gpu", "type": ["null", "boolean", "int"], "doc": "enable a GPU"},
        {"name": NAMESPACE + "interLinkNode", "type": ["null", "string"],
         "doc": "interLink virtual node to run on"},
        {"name": NAMESPACE + "batch", "type": ["null", "int"],
         "doc": "run up to this many of the tool's jobs (e.g. scatter branches) in one OSCAR job, one after "
                "the other: one pod start for many short commands; 1 = one job each"},
    ],
}
# Kubernetes quantities, as OSCAR validates them (cores or millicores; bytes with an optional suffix).
_CPU_RE = re.compile(r"^(\d+(\.\d+)?|\.\d+)m?$")
_MEM_RE = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$")


class HintError(ValueError):
    """An ``oscar:Offload`` hint has a value of the wrong kind."""


@dataclass(frozen=True)
class OffloadHint:
    """The parsed hint; ``None`` fields mean "not said"."""

    offload: bool = True
    cluster: str | None = None
    cpu: str | None = None
    memory: str | None = None
    gpu: bool = False
    interlink_node: str | None = None
    #: jobs per OSCAR job (None: the runner's ``--oscar-batch``).
    batch: int | None = None


def _field(hint: Mapping[str, Any], name: str) -> Any:
    # Loaded documents carry expanded keys when the schema is registered, short keys otherwise.
    for key in (name, NAMESPACE + name):
        if key in hint:
            return hint[key]
    return None


def parse_offload_hint(hint: Mapping[str, Any] | None) -> OffloadHint | None:
    """Parse an ``oscar:Offload`` hint (None when absent).

    Raises:
        HintError: a field is of the wrong kind (the message names it).
    """
    if hint is None:
        return None
    offload = _field(hint, "offload")
    cluster = _field(hint, "cluster")
    cpu = _field(hint, "cpu")
    memory = _field(hint, "memory")
    gpu = _field(hint, "gpu")
    node = _field(hint, "interLinkNode")
    batch = _field(hint, "batch")
    if offload is not None and not isinstance(offload, bool):
        raise HintError(f"oscar:Offload offload must be true or false, got {offload!r}")
    if cluster is not None and not isinstance(cluster, str):
        raise HintError(f"oscar:Offload cluster must be a profile name, got {cluster!r}")
    if node is not None and not isinstance(node, str):
        raise HintError(f"oscar:Offload interLinkNode must be a node name, got {node!r}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise HintError(f"oscar:Offload batch must be a whole number of jobs, at least 1, got {batch!r}")
    if gpu is not None and not isinstance(gpu, (bool, int)):
        raise HintError(f"oscar:Offload gpu must be true/false or a count, got {gpu!r}")
    return OffloadHint(
        offload=True if offload is None else offload,
        cluster=cluster or None,
        cpu=None if cpu is None else _cpu(cpu),
        memory=None if memory is None else _memory(memory),
        gpu=bool(gpu),
        interlink_node=node or None,
        batch=batch,
    )


def _cpu(value: object) -> str:
    text = str(value).strip()
    if isinstance(value, bool) or not _CPU_RE.match(text) or float(text.rstrip("m")) <= 0:
        raise HintError(f"oscar:Offload cpu {value!r} is not a CPU quantity such as 2, 0.5 or 500m")
    return text


def _memory(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = f"{math.ceil(value)}Mi"
    text = str(value).strip()
    if not _MEM_RE.match(text) or float(re.sub(r"[A-Za-z]+$", "", text)) <= 0:
        raise HintError(f"oscar:Offload memory {value!r} is not a quantity such as 4Gi, 512Mi or a number of MiB")
    return text


def extension_schema(version_file: str | None) -> str:
    """The schema text registering ``oscar:Offload``, on top of cwltool's extensions when given.

    Args:
        version_file: cwltool's extension file for the CWL version (e.g. ``extensions-v1.2.yml``) when
            ``--enable-ext`` is on, or None for the standard schema plus our hint only.
    """
    if version_file:
        doc = yaml.safe_load(resources.files("cwltool").joinpath(version_file).read_text("utf-8"))
    else:
        doc = {"$base": NAMESPACE, "$namespaces": {"cwl": "https://w3id.org/cwl/cwl#"},
               "$graph": [{"$import": "https://w3id.org/cwl/CommonWorkflowLanguage.yml"}]}
    doc.setdefault("$namespaces", {})["oscar"] = NAMESPACE
    doc["$graph"].append(dict(_OFFLOAD_RECORD))
    return yaml.safe_dump(doc, sort_keys=False)
