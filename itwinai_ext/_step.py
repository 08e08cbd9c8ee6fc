"""``OscarStep``: a pipeline step whose work is an OSCAR service's script."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from itwinai.components import monitor_exec

from oscar_plugins import RESERVED_FILES

from ._base import OscarComponentBase
from ._errors import StepConfigError, StepError
from ._files import read_output, write_args
from ._service import OUTPUT_LIST, STEP_MARKER, plain, resolve_service, step_script
from ._transport import RemoteRun, StepTransport, choose_mode

__all__ = ["OscarStep"]



class OscarStep(OscarComponentBase):
    """Run a pipeline step on an OSCAR service: the step's inputs go in, the script's outputs come back.

    Each positional input becomes one file in the service's ``$OSCAR_INPUTS_DIR`` (the first is also
    ``$INPUT_FILE_PATH``): tensors as ``.pt``, arrays as ``.npy``, JSON values as ``.json``, files under
    their own name, other objects pickled. The files the script writes to ``$TMP_OUTPUT_DIR`` are the
    step's result, read back by extension (``.pt``, ``.npy``, ``.json``; ``.pkl`` only with
    ``allow_pickle``; other files as paths): one output is returned as is, several as a tuple (which the
    pipeline passes on as separate arguments), none as None.

    Args:
        service: the service: a deployed service's name, an FDL file (``svc.yaml`` or ``svc.yaml#name``)
            or a service definition mapping. Definitions are deployed on first use (idempotently).
        cluster: the oscar-cli profile to use; None means ``OSCAR_*`` environment variables, then the
            profile file's default, then the embedded local cluster.
        mode: ``sync`` (``POST /run``: small inputs, under 300 s), ``async`` (a job; large inputs staged
            through the service's bucket) or ``auto`` (sync when the request is under ``sync_limit_mb``
            and ``timeout`` is unset or under 290 s, else async).
        timeout: seconds to wait for the result (None: no limit beyond OSCAR's 300 s for sync runs);
            an async job still running then is cancelled.
        outputs: the output file names to return, in order (default: every file, sorted by name).
        env: extra environment variables for the script.
        allow_pickle: unpickle ``.pkl`` outputs (and non-tensor ``.pt``). Unpickling runs code chosen by
            whoever wrote the file: enable it only for services you trust.
        output_dir: where output files returned as paths are kept (default ``./oscar-outputs/<name>``).
        sync_limit_mb: the largest request sent synchronously.
        name: the step's name, used in logs and errors.

    Example (YAML, run by ``itwinai exec-pipeline``)::

        double:
          _target_: oscar_plugins.itwinai.OscarStep
          service: services/double.yaml
          outputs: [doubled.npy]
    """

    def __init__(
        self,
        service: str | Mapping[str, Any],
        cluster: str | None = None,
        mode: str = "auto",
        timeout: float | None = None,
        outputs: list[str] | None = None,
        env: Mapping[str, Any] | None = None,
        allow_pickle: bool = False,
        output_dir: str | None = None,
        sync_limit_mb: float = 1.0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        service, outputs, env = plain(service), plain(outputs), plain(env)  # OmegaConf nodes -> plain data
        self.save_parameters(**self.locals2params(locals()))
        label = service if isinstance(service, str) else service.get("name") if isinstance(service, Mapping) else None
        self.name = name or f"OscarStep[{label or 'service'}]"
        self._setup(cluster=cluster, mode=mode, timeout=timeout, sync_limit_mb=sync_limit_mb,
                    output_dir=output_dir, env=env)
        if outputs is not None and not (isinstance(outputs, list) and all(isinstance(o, str) for o in outputs)):
            raise StepConfigError(self.name, "outputs must be a list of file names")
        self.outputs = outputs
        self.allow_pickle = bool(allow_pickle)
        self._check_serialisable()
        resolved = resolve_service(service, step=self.name, script_for=step_script)
        self.transport = StepTransport(self.name, cluster, resolved, self.timeout, marker=STEP_MARKER)

    @monitor_exec
    def execute(self, *args: Any) -> Any:
        """Ship ``args`` to the service, run its script, return its outputs (see the class docstring)."""
        work = self._new_workdir()
        *inputs, listing = write_args(args, work / "in", self.name)
        mode = choose_mode(self.mode, input_bytes=sum(p.stat().st_size for p in [*inputs, listing]),
                           n_inputs=len(inputs) + 1, timeout=self.timeout, sync_limit_mb=self.sync_limit_mb,
                           step=self.name)
        run = self.transport.run(inputs, mode, work, env=self.env, extras=[listing], chosen=self.mode == "auto")
        self.last_run = run
        self._log_run(run)
        values = [read_output(path, name, allow_pickle=self.allow_pickle, keep_dir=self._keep_dir(), step=self.name)
                  for name, path in self._named_outputs(run)]
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    def _named_outputs(self, run: RemoteRun) -> list[tuple[str, Path]]:
        files = dict(run.outputs)
        if run.single:  # one unnamed file: the output list alone (nothing written), or an unprepared service's
            lone = files.pop("")
            files = {} if run.marked else {"output" + _sniff_suffix(lone): lone}
        listing = files.pop(OUTPUT_LIST, None)
        for reserved in RESERVED_FILES:
            files.pop(reserved, None)
        order = sorted(files)
        if listing is not None:
            listed = [line.strip().removeprefix("./") for line in listing.read_text().splitlines() if line.strip()]
            order = [n for n in listed if n in files] + [n for n in order if n not in listed]
        if self.outputs is None:
            return [(n, files[n]) for n in order]
        missing = [n for n in self.outputs if n not in files]
        if missing:
            raise StepError(self.name, f"the service {run.service!r} did not write {', '.join(missing)} "
                            f"(it wrote: {', '.join(order) or 'nothing'}): fix the step's outputs list, or make "
                            "the script write those files to $TMP_OUTPUT_DIR")
        return [(n, files[n]) for n in self.outputs]


def _sniff_suffix(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(8)
    return ".npy" if head.startswith(b"\x93NUMPY") else ""


OscarStep.__module__ = "oscar_plugins.itwinai"  # its public path, also in to_dict()'s _target_
