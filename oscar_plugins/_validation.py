"""Pure validation helpers shared by the client-side FDL model and the local cluster.

They encode the rules a real OSCAR server applies (Kubernetes naming and quantities), so that both
sides reject the same inputs with the same words.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

__all__ = [
    "DNS1123_LABEL_RE",
    "SERVICE_NAME_MAX",
    "job_name_problem",
    "output_path_problem",
    "parse_cpu",
    "parse_memory",
    "service_name_problem",
]

SERVICE_NAME_MAX = 39
JOB_NAME_MAX = 63
DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

_CPU_RE = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m)?$")
_MEM_RE = re.compile(r"^(\d+(\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E|m)?$")
_MEM_FACTORS = {
    None: 1,
    "m": 0.001,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def _label_problem(kind: str, name: object, max_len: int) -> str | None:
    if not isinstance(name, str) or not name:
        return f"{kind} name is missing: give 1-{max_len} lowercase letters, digits or '-'"
    if len(name) > max_len:
        return f"{kind} name {name!r} has {len(name)} characters: OSCAR allows at most {max_len}"
    if not DNS1123_LABEL_RE.match(name):
        return (
            f"{kind} name {name!r} is not a DNS-1123 label: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return None


def service_name_problem(name: object) -> str | None:
    """Return why ``name`` is not a valid OSCAR service name, or None when it is valid."""
    return _label_problem("service", name, SERVICE_NAME_MAX)


def job_name_problem(name: object) -> str | None:
    """Return why ``name`` is not a valid job name (``X-Delegated-Job-ID``), or None."""
    return _label_problem("job", name, JOB_NAME_MAX)


def parse_cpu(value: str | float | int) -> float:
    """Parse a Kubernetes CPU quantity ("0.5", "500m", 2) into cores.

    Raises:
        ValueError: the text is not a CPU quantity; the message says what is allowed.
    """
    if isinstance(value, bool):
        raise ValueError(f"cpu {value!r} is not a quantity: use cores such as '0.5', '2' or millicores '500m'")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"cpu {value!r} must be greater than 0")
        return float(value)
    text = str(value).strip()
    match = _CPU_RE.match(text)
    if not match:
        raise ValueError(f"cpu {value!r} is not a quantity: use cores such as '0.5', '2' or millicores '500m'")
    cores = float(match.group(1)) / (1000.0 if match.group(3) else 1.0)
    if cores <= 0:
        raise ValueError(f"cpu {value!r} must be greater than 0")
    return cores


def parse_memory(value: str | int) -> int:
    """Parse a Kubernetes memory quantity ("256Mi", "1Gi", "500M", 1048576) into bytes.

    Raises:
        ValueError: the text is not a memory quantity; the message says what is allowed.
    """
    if isinstance(value, bool):
        raise ValueError(f"memory {value!r} is not a quantity: use a size such as '256Mi' or '2Gi'")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"memory {value!r} must be greater than 0")
        return value
    text = str(value).strip()
    match = _MEM_RE.match(text)
    if not match:
        raise ValueError(f"memory {value!r} is not a quantity: use a size such as '256Mi' or '2Gi'")
    size = int(float(match.group(1)) * _MEM_FACTORS[match.group(3)])
    if size <= 0:
        raise ValueError(f"memory {value!r} must be greater than 0")
    return size


def output_path_problem(label: str, target: Path, shown: str) -> str | None:
    """Whether a report (a timeline, a crate, a research object) can be created at ``target``, before the run
    that makes it: its folder must exist and take a new file (tried, as ``os.access`` cannot see read-only
    mounts or ACLs). The problem, naming ``label`` and the path as the user gave it (``shown``), or None."""
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        return f"{label} {shown!r}: the folder {str(folder)!r} does not exist: create it first or choose another path"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".oscar-plugins-check-"):
            pass
    except OSError as exc:
        return (f"{label} {shown!r} cannot be written ({exc.strerror or exc}): choose a path in a folder you can "
                "write to")
    return None
