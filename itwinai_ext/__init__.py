"""oscar_plugins.itwinai: itwinai components that run pipeline steps on OSCAR services.

Two components, usable from Python or from a Hydra YAML pipeline run by ``itwinai exec-pipeline``:

* :class:`OscarStep` - the step's work is an OSCAR service's script: inputs are shipped as files,
  the script's output files come back as tensors, arrays, JSON values or paths.
* :class:`OscarOffload` - an existing itwinai component runs, unchanged, on an OSCAR service that has
  itwinai installed ("inference step on the cluster").
* :class:`OscarPipeline` - an itwinai ``Pipeline`` that also writes a timeline and a Workflow Run RO-Crate
  of its run (local steps and offloaded ones).
* :func:`offloaded` - the same as a Hydra target that wraps a step of a config you do not edit (override
  the step's ``_target_``, keep its keys).

Example::

    from oscar_plugins.itwinai import OscarOffload
    from itwinai.pipeline import Pipeline

    pipe = Pipeline([getter, OscarOffload({"_target_": "my.Predictor", "checkpoint": "m.pt"},
                                          service="fdl.yaml", files=["m.pt", "my.py"]), saver])
    pipe.execute()

Both connect with the usual precedence (``cluster=`` > ``OSCAR_*`` environment > oscar-cli profile
file > the embedded local cluster). See ``itwinai_ext/README.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oscar_plugins import lazy_exports

_EXPORTS = {
    "OscarStep": "._step",
    "OscarOffload": "._offload",
    "OscarPipeline": "._pipeline",
    "offloaded": "._offload",
    "StepError": "._errors",
    "StepConfigError": "._errors",
    "StepFailed": "._errors",
    "ItwinaiNotInstalled": "._errors",
}

__all__ = ["ItwinaiNotInstalled", "OscarOffload", "OscarPipeline", "OscarStep", "StepConfigError", "StepError",
           "StepFailed", "offloaded"]

if TYPE_CHECKING:
    from ._errors import ItwinaiNotInstalled, StepConfigError, StepError, StepFailed
    from ._offload import OscarOffload, offloaded
    from ._pipeline import OscarPipeline
    from ._step import OscarStep


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
