"""oscar_plugins.cwl: ``oscar-cwl``, a CWL runner that offloads CommandLineTools to OSCAR.

Built on cwltool's extension points, not a fork (see ``cwl/README.md``):

* :func:`make_tool` (``LoadingContext.construct_tool_object``) picks :class:`OscarCommandLineTool`
  for the CommandLineTools to offload (``--offload``, the ``oscar:Offload`` hint);
* :class:`OscarCommandLineJob` stages a job's inputs, submits it to a generic runner service through
  the core's :class:`~oscar_plugins.Dispatcher`, and collects the output directory;
* :class:`OscarExecutor` keeps up to ``--max-in-flight`` jobs on the cluster without a thread each;
* :class:`OscarPathMapper` maps inputs (including ``s3://`` objects) to paths in the pod.

The console script is ``oscar-cwl`` (:func:`oscar_plugins.cwl.main.main`). Example::

    oscar-cwl --outdir out workflow.cwl job.yml            # every CommandLineTool on OSCAR
    oscar-cwl --offload hinted --oscar-cluster prod wf.cwl job.yml
"""

from __future__ import annotations

from .executor import OscarExecutor
from .hints import NAMESPACE, OFFLOAD, OffloadHint, parse_offload_hint
from .job import OffloadTarget, OscarCommandLineJob
from .pathmapper import OscarPathMapper
from .tool import OscarCommandLineTool, OscarLoadingContext, OscarRuntimeContext, OscarSettings, make_tool

__all__ = [
    "NAMESPACE",
    "OFFLOAD",
    "OffloadHint",
    "OffloadTarget",
    "OscarCommandLineJob",
    "OscarCommandLineTool",
    "OscarExecutor",
    "OscarLoadingContext",
    "OscarPathMapper",
    "OscarRuntimeContext",
    "OscarSettings",
    "make_tool",
    "parse_offload_hint",
]
