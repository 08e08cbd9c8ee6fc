"""oscar_plugins.airflow: the Apache Airflow 3 provider for OSCAR (hook, operators, triggers, sensors).

Registered through the ``apache_airflow_provider`` entry point (:mod:`.get_provider_info`). Import the
pieces from their modules; this package itself imports nothing from Airflow::

    from oscar_plugins.airflow.hook import OscarHook
    from oscar_plugins.airflow.operators import (OscarDeployServiceOperator, OscarRunServiceOperator,
                                                 OscarSubmitJobOperator)
    from oscar_plugins.airflow.report import OscarRunReportOperator
    from oscar_plugins.airflow.sensors import OscarJobSensor, OscarOutputSensor
    from oscar_plugins.airflow.triggers import OscarJobTrigger, OscarOutputTrigger
    from oscar_plugins.airflow.watchers import OscarJobsFinishedTrigger, OscarNewObjectsTrigger

See ``README.md`` in this folder for the connection fields and the operators.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "OscarHook": ".hook",
    "OscarDeployServiceOperator": ".operators",
    "OscarRunServiceOperator": ".operators",
    "OscarSubmitJobOperator": ".operators",
    "OscarRunReportOperator": ".report",
    "OscarJobSensor": ".sensors",
    "OscarOutputSensor": ".sensors",
    "OscarJobTrigger": ".triggers",
    "OscarOutputTrigger": ".triggers",
    "OscarJobsFinishedTrigger": ".watchers",
    "OscarNewObjectsTrigger": ".watchers",
    "OscarJobLink": ".links",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return __all__
