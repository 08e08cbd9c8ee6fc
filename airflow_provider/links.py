"""The "OSCAR job" button on a task: a link to the job's service on the OSCAR dashboard.

The operator stores the URL in XCom when it submits (``OscarJobLink.persist``); the link reads it
back, so the API server needs no connection to draw the button.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._compat import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

__all__ = ["OscarJobLink"]

XCOM_KEY = "oscar_job_url"


class OscarJobLink(BaseOperatorLink):
    """Link to the OSCAR dashboard page of the task's job(s)."""

    name = "OSCAR job"

    @property
    def xcom_key(self) -> str:
        return XCOM_KEY

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        url = XCom.get_value(key=XCOM_KEY, ti_key=ti_key)
        return str(url) if url else ""

    @staticmethod
    def persist(context: Any, url: str) -> None:
        """Store the URL for the link (call from an operator's execute)."""
        context["ti"].xcom_push(key=XCOM_KEY, value=url)
