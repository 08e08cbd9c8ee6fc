"""oscar_plugins.itwinai: itwinai components that run pipeline steps on OSCAR.

Not built yet: tracked by the issue "itwinai step". The package exists so that the distribution's
namespace layout (``oscar_plugins.itwinai`` from the ``itwinai_ext/`` folder) is fixed and tested.
"""
