"""oscar_plugins.cwl: the CWL runner (``oscar-cwl``) on cwltool's extension points.

Not built yet: tracked by the issue "CWL runner". The package exists so that the distribution's
namespace layout (``oscar_plugins.cwl`` from the ``cwl/`` folder) is fixed and tested.
"""
