"""oscar_plugins.airflow: the Apache Airflow 3 provider (hook, operators, trigger, sensor).

Not built yet: tracked by the issue "Airflow provider". The package exists so that the distribution's
namespace layout (``oscar_plugins.airflow`` from the ``airflow_provider/`` folder) is fixed and tested.
"""
