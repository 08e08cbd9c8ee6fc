"""Generic runner services: one OSCAR service per (image, resources), reused across steps and runs.

The service's script (:data:`RUNNER_SCRIPT`, POSIX ``sh``; needs ``tar`` and ``base64`` in the image,
and one of ``curl``/``wget``/``python3`` for inputs too large to travel in the job script) defines the
``oc_*`` functions and then sources the job script that
:func:`oscar_plugins.cwl.plan.render_job_script` built. It writes one file into the job's own output
folder (``$TMP_OUTPUT_DIR``, per job thanks to the oscar-plugins wrapper), ``result.tar`` (one upload and
one download per job), holding:

* ``out/``: the whole output directory (empty directories, symlinks and modes survive);
* ``meta/exit-code``: the command's exit code; ``meta/timedout`` when ``ToolTimeLimit`` stopped it;
* ``meta/stdout.log`` / ``meta/stderr.log``: the command's streams when the tool does not capture them;
* ``back/<n>``: in-place updated inputs that live outside the output directory.

The runner itself exits non-zero only when the job could not be prepared (an input could not be
fetched, a directory not created): the command's own exit code is data, judged locally with the
tool's ``successCodes``/``permanentFailCodes`` like cwltool does. No credential is ever in the
script: staged inputs arrive as presigned URLs in the job script.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FETCH_UNAVAILABLE", "RUNNER_SCRIPT", "RUNNER_VERSION", "RunnerSpec", "format_cpu", "format_memory"]

RUNNER_VERSION = "3"
#: The runner's exit code when an input must be downloaded and the image has no curl, wget or python3:
#: oscar-cwl then sends that image's jobs with every input inside the job (EX_UNAVAILABLE).
FETCH_UNAVAILABLE = 69
#: Labels put on runner services, so that they can be listed (and cleaned) as a group.
RUNNER_LABEL = "oscar-plugins.io/cwl-runner"

RUNNER_SCRIPT = r"""# oscar-cwl runner v3: runs one CWL CommandLineTool job; the job script is $INPUT_FILE_PATH.
oc_result="${TMP_OUTPUT_DIR:?the oscar-plugins wrapper sets TMP_OUTPUT_DIR}"
oc_fail() { echo "oscar-cwl runner: $*" >&2; exit 70; }
oc_fetch() {
  if command -v curl >/dev/null 2>&1; then curl -fsS --retry 5 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" "$1"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import shutil,sys,urllib.request as u
shutil.copyfileobj(u.urlopen(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
  else echo "oscar-cwl runner: the image has no curl, wget or python3 to fetch inputs" >&2; exit 69; fi
}
oc_begin() {
  oc_root=$1; oc_outdir=$2; oc_tmpdir=$3; oc_in=$1/.in; oc_meta=$1/.meta; oc_k=$1/.pack
  mkdir -p "$oc_in" "$oc_meta" "$oc_outdir" "$oc_tmpdir" "$oc_k/meta" "$oc_k/back" || \
    oc_fail "cannot create the job directories in $1"
  : > "$oc_meta/drop"; : > "$oc_meta/back"
  oc_stdin=/dev/null; oc_stdout=; oc_stderr=; oc_timelimit=0
}
oc_get() { oc_fetch "$2" "$oc_in/$1" || oc_fail "could not download input $1"; }
oc_put() { printf '%s' "$2" | base64 -d > "$oc_in/$1" || oc_fail "could not decode input $1"; }
oc_parent() { mkdir -p "$(dirname "$1")" || oc_fail "cannot create the directory of $1"; }
oc_file() {
  oc_parent "$2"; rm -f "$2"
  if [ "$3" = ro ]; then ln "$oc_in/$1" "$2" 2>/dev/null || cp "$oc_in/$1" "$2" || oc_fail "cannot place $2"
  else { cp "$oc_in/$1" "$2" && chmod u+w "$2"; } || oc_fail "cannot place $2"; fi
}
oc_tree() {
  mkdir -p "$2" && tar -xf "$oc_in/$1" -C "$2" || oc_fail "cannot unpack the directory $2"
  if [ "$3" = rw ]; then chmod -R u+w "$2"; fi
}
oc_dir() { mkdir -p "$1" || oc_fail "cannot create $1"; }
oc_text() {
  oc_parent "$1"; printf '%s' "$2" | base64 -d > "$1" || oc_fail "cannot write $1"
  if [ "$3" = rw ]; then chmod u+w "$1"; fi
}
oc_drop() { printf '%s\n' "$1" >> "$oc_meta/drop"; }
oc_back() { printf '%s %s\n' "$1" "$2" >> "$oc_meta/back"; }
oc_clean_env() {
  unset INPUT_FILE_PATH TMP_INPUT_DIR TMP_OUTPUT_DIR JOB_UUID OSCAR_INPUTS_DIR OSCAR_SERVICE_NAME \
    STORAGE_OBJECT_KEY EVENT EVENT_TYPE
}
oc_run() {
  ( oc_clean_env; oc_setenv; cd "$oc_outdir" && exec "$@" ) < "$oc_stdin" \
    > "${oc_stdout:-$oc_meta/stdout.log}" 2> "${oc_stderr:-$oc_meta/stderr.log}" &
  oc_pid=$!; oc_dog=
  if [ "$oc_timelimit" -gt 0 ]; then
    ( trap 'kill "$oc_s" 2>/dev/null; exit 0' TERM
      sleep "$oc_timelimit" & oc_s=$!; wait "$oc_s"
      kill -TERM "$oc_pid" 2>/dev/null && echo "$oc_timelimit" > "$oc_meta/timedout" ) </dev/null >/dev/null 2>&1 &
    oc_dog=$!
  fi
  wait "$oc_pid"; oc_rc=$?
  if [ -n "$oc_dog" ]; then kill "$oc_dog" 2>/dev/null; wait "$oc_dog" 2>/dev/null; fi
}
oc_pack() {
  while IFS= read -r oc_p; do [ -n "$oc_p" ] && rm -rf "$oc_p"; done < "$oc_meta/drop"
  echo "$oc_rc" > "$oc_k/meta/exit-code"
  for oc_f in stdout.log stderr.log timedout; do
    if [ -s "$oc_meta/$oc_f" ]; then mv "$oc_meta/$oc_f" "$oc_k/meta/$oc_f"; fi
  done
  while read -r oc_i oc_p; do
    if [ -n "$oc_p" ] && [ -e "$oc_p" ]; then cp -RPp "$oc_p" "$oc_k/back/$oc_i" || oc_fail "cannot pack $oc_p"; fi
  done < "$oc_meta/back"
  case "$oc_outdir" in
    "$oc_root"/*) mv "$oc_outdir" "$oc_k/out" ;;
    *) cp -RPp "$oc_outdir" "$oc_k/out" ;;
  esac || oc_fail "cannot pack $oc_outdir"
  tar -C "$oc_k" -cf "$oc_result/result.tar" . || oc_fail "cannot pack the results"
  rm -rf "$oc_root"
}
. "${INPUT_FILE_PATH:?no job script}"
"""


def format_cpu(cores: float) -> str:
    """CWL cores (may be fractional) as an OSCAR cpu quantity: ``1``, ``0.5``, ``2.25``."""
    if cores <= 0:
        cores = 1
    text = f"{cores:.3f}".rstrip("0").rstrip(".")
    return text if text not in ("", "0") else "0.001"


def format_memory(mebibytes: float) -> str:
    """CWL ram (MiB) as an OSCAR memory quantity, rounded up: ``256Mi``."""
    return f"{max(1, math.ceil(mebibytes))}Mi"


@dataclass(frozen=True)
class RunnerSpec:
    """What makes two jobs share a runner service."""

    image: str
    cpu: str
    memory: str
    gpu: bool = False
    interlink_node: str | None = None

    @property
    def name(self) -> str:
        """``cwl-<12 hex>``: a hash of the spec and the runner version (16 characters, DNS-1123)."""
        blob = json.dumps({**asdict(self), "runner": RUNNER_VERSION}, sort_keys=True).encode()
        return "cwl-" + hashlib.sha256(blob).hexdigest()[:12]

    def service(self) -> dict[str, Any]:
        """The service definition (the wrapper is added by ``ensure_service``)."""
        svc: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "script": RUNNER_SCRIPT,
            "cpu": self.cpu,
            "memory": self.memory,
            "log_level": "CRITICAL",
            "output": [{"storage_provider": "minio.default", "path": f"{self.name}/out"}],
            "labels": {RUNNER_LABEL: RUNNER_VERSION},
        }
        if self.gpu:
            svc["enable_gpu"] = True
        if self.interlink_node:
            svc["interlink_node_name"] = self.interlink_node
        return svc
