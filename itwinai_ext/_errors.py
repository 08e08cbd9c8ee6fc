"""Errors of the itwinai steps: every one names the step, and derives from the core's tree."""

from __future__ import annotations

from oscar_plugins import ConfigError, JobFailed, OscarError

__all__ = ["ItwinaiNotInstalled", "StepConfigError", "StepError", "StepFailed"]


class StepError(OscarError):
    """A step could not run on its service (cluster unreachable, service missing, ...).

    Attributes:
        step: the step's name.
    """

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"step {step!r}: {message}")
        self.step = step


class StepConfigError(StepError, ConfigError):
    """A step is misconfigured, or its data cannot travel the way it was asked to."""


class StepFailed(JobFailed):
    """The remote part of a step failed; ``log_tail`` holds the end of the job's log.

    Attributes:
        step: the step's name.
    """

    def __init__(self, step: str, message: str, *, service: str, job: str | None = None,
                 exit_code: int | None = None, log_tail: str = "") -> None:
        super().__init__(f"step {step!r}: {message}", service=service, job=job, exit_code=exit_code,
                         log_tail=log_tail)
        self.step = step


class ItwinaiNotInstalled(StepFailed):
    """The service's image cannot import itwinai, so it cannot run an offloaded component."""
