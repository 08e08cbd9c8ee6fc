"""What Airflow's providers manager reads through the ``apache_airflow_provider`` entry point.

The dict is validated against Airflow's ``provider_info.schema.json``; ``package-name`` must be the
installed distribution's name. Connection form fields are declared here (``conn-fields``,
``ui-field-behaviour``), as Airflow 3.2+ expects, so no hook has to be imported to draw the form.
This module imports nothing from Airflow: the providers manager loads it early and often.
"""

from __future__ import annotations

from typing import Any

_INTEGRATION = "OSCAR"
_PKG = "oscar_plugins.airflow"


def _text(label: str, description: str, *, fmt: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if fmt:
        schema["format"] = fmt
    return {"label": label, "description": description, "schema": schema}


def connection_fields() -> dict[str, dict[str, Any]]:
    """The ``oscar`` connection's extra fields, as shown in the connection form."""
    return {
        "oidc_token": _text("OIDC access token", "Bearer token instead of login/password (EGI Check-in, Keycloak).",
                            fmt="password"),
        "refresh_token": _text("OIDC refresh token", "Exchanged for access tokens and refreshed before expiry.",
                               fmt="password"),
        "token_endpoint": _text("OIDC token endpoint",
                                "Where the refresh token is exchanged; default <iss>/protocol/openid-connect/token.",
                                fmt="url"),
        "ssl_verify": {"label": "Verify TLS certificates", "description": "Switch off only for a test cluster.",
                       "schema": {"type": ["boolean", "null"], "default": True}},
        "cluster_id": _text("Cluster id", "Which services of a multi-cluster FDL file belong to this cluster."),
        "local": {"label": "Embedded local cluster",
                  "description": "Run on the embedded local OSCAR cluster of oscar-plugins (no host needed).",
                  "schema": {"type": ["boolean", "null"], "default": False}},
        "dashboard_url": _text("Dashboard link template",
                               "Extra-link target; {endpoint}, {service} and {job} are filled in.", fmt="url"),
    }


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "oscar-plugins",
        "name": "OSCAR",
        "description": "`OSCAR <https://oscar.grycap.net>`__: deploy OSCAR serverless services, run them, "
                       "submit asynchronous jobs and collect their outputs, from Airflow 3.\n",
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://docs.oscar.grycap.net",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.hook"]}],
        "operators": [{"integration-name": _INTEGRATION,
                       "python-modules": [f"{_PKG}.operators", f"{_PKG}.report"]}],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.sensors"]}],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.triggers", f"{_PKG}.watchers"]}],
        "connection-types": [
            {
                "connection-type": "oscar",
                "hook-class-name": f"{_PKG}.hook.OscarHook",
                "hook-name": "OSCAR",
                "conn-fields": connection_fields(),
                "ui-field-behaviour": {
                    "hidden-fields": ["schema"],
                    "relabeling": {"host": "Endpoint", "login": "Username"},
                    "placeholders": {
                        "host": "https://oscar.example.org",
                        "login": "oscar (or leave empty and give a token)",
                        "password": "basic-auth password",
                        "port": "443 (usually part of the endpoint)",
                    },
                },
            }
        ],
        "extra-links": [f"{_PKG}.links.OscarJobLink"],
    }
