"""The bad-input catalogue: each case, where it is hit, the words the user must see, and which suite tests it.

One catalogue for every surface: the core (CLI, library, local cluster) and the adapters (oscar-cwl, the
Airflow operators, the itwinai steps). ``tests/reliability/test_bad_inputs.py`` runs the core cases; each
adapter case is run by a test of its adapter's suite, which takes the expected words from here with
``expect(case_id)`` (``test_bad_inputs.py`` checks that every such id is used by a test of that suite).
``docs/RELIABILITY.md`` lists them all (a test keeps the two in step). Print the table with
``python -m tests.reliability.catalogue``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

CORE = "tests/reliability"
CWL = "tests/cwl"
AIRFLOW = "tests/airflow"
ITWINAI = "tests/itwinai"


@dataclass(frozen=True)
class Case:
    id: str
    surface: str
    what: str
    expect: str  # words the message must contain
    suite: str = CORE  # the test folder whose tests run the case


CASES = [
    Case("fdl-yaml", "CLI service apply", "FDL file that is not valid YAML", "not valid YAML at line"),
    Case("fdl-shape", "CLI service apply", "FDL without functions.oscar", "functions"),
    Case("fdl-name", "CLI service apply", "service name with capitals/underscore", "DNS-1123"),
    Case("fdl-name-long", "CLI service apply", "service name of 40 characters", "at most 39"),
    Case("fdl-image", "CLI service apply", "service without image", "required field 'image' is missing"),
    Case("fdl-script-file", "CLI service apply", "script: file that does not exist", "not found"),
    Case("fdl-script-empty", "library", "empty script", "script is empty"),
    Case("fdl-memory", "CLI service apply", "memory: lots", "256Mi"),
    Case("fdl-cpu", "library", "cpu: abc", "millicores"),
    Case("fdl-missing-file", "CLI service apply", "FDL path that does not exist", "does not exist"),
    Case("profile-unknown", "CLI --cluster", "profile name not in ~/.oscar-cli/config.yaml",
         "no cluster profile named"),
    Case("profile-no-password", "CLI", "profile with auth_user but no auth_password", "auth_password is missing"),
    Case("profile-yaml", "CLI", "profile file that is not valid YAML", "is not valid YAML"),
    Case("cred-wrong", "CLI", "wrong password", "credentials were refused"),
    Case("cred-expired-token", "CLI (OSCAR_TOKEN)", "expired or wrong OIDC access token", "credentials were refused"),
    Case("cred-refresh-no-issuer", "library", "refresh token naming no issuer", "oidc_token_endpoint"),
    Case("cred-oidc-agent", "library", "oidc-agent account without oidc-agent installed", "oidc-token"),
    Case("endpoint-unreachable", "CLI", "endpoint where nothing listens", "cannot reach"),
    Case("endpoint-tls", "CLI", "https:// to a server that does not speak TLS", "TLS failed"),
    Case("service-missing-run", "CLI run", "service that does not exist", "does not exist"),
    Case("service-missing-get", "CLI service get", "service that does not exist", "deploy it first"),
    Case("input-missing-run", "CLI run", "input file that does not exist", "does not exist"),
    Case("input-missing-job", "CLI job", "input file that does not exist", "does not exist"),
    Case("output-exists", "CLI run -o", "download target that exists", "already exists"),
    Case("json-invalid", "CLI run --json", "--json that is not JSON", "not valid JSON"),
    Case("env-malformed", "CLI job --env", "--env without '='", "NAME=VALUE"),
    Case("inputs-collide", "library", "two inputs of one job with the same file name", "distinct names"),
    Case("payload-too-large", "library", "8 MiB payload for a service not deployed by oscar-plugins",
         "too large"),
    Case("job-body-oversized", "local cluster /job", "POST /job body over 128 KiB (accepted, as OSCAR does; the pod "
         "cannot start)", "did not fit the pod's EVENT variable"),
    Case("reserved-json", "library run", "JSON input with the supervisor's reserved key 'Records'",
         "delivered unchanged"),
    Case("non-utf8", "library run", "binary (non-UTF-8) input", "delivered unchanged"),
    Case("empty-input", "library job", "empty input file", "delivered unchanged"),
    Case("key-traversal", "local cluster", "service name '../etc' in a URL", "rejected"),
    Case("zip-traversal", "library run", "a zip answer with an entry '../evil'", "unsafe path"),
    Case("disk-full", "library download", "no space left (file size limit) while downloading", "cannot write"),
    Case("script-terminator", "library ensure_service", "script containing the wrapper's reserved line",
         "reserves"),
    Case("expect-mismatch", "library run", "expect='zip' for a text answer", "valid base64"),
    # oscar-cwl (real cwltool through the oscar-cwl console script; tests/cwl/test_e2e.py)
    Case("cwl-profile-unknown", "oscar-cwl --oscar-cluster", "profile name not in ~/.oscar-cli/config.yaml",
         "no cluster profile named", CWL),
    Case("cwl-cred-wrong", "oscar-cwl", "wrong password", "credentials were refused", CWL),
    Case("cwl-input-missing", "oscar-cwl", "input file that does not exist", "No such file or directory", CWL),
    Case("cwl-s3-input-missing", "oscar-cwl", "s3:// input object that does not exist",
         "does not exist in the object store", CWL),
    Case("cwl-hint-invalid", "oscar-cwl", "oscar:Offload hint with cpu: lots", "is not a CPU quantity", CWL),
    Case("cwl-dockerfile", "oscar-cwl", "DockerRequirement with dockerFile and no dockerPull (exit 33)",
         "give it as dockerPull", CWL),
    Case("cwl-image-invalid", "oscar-cwl", "dockerPull that is no image reference",
         "must be a container image reference", CWL),
    Case("cwl-document-invalid", "oscar-cwl", "CWL document with an unknown input type", "failed validation", CWL),
    Case("cwl-max-in-flight", "oscar-cwl --max-in-flight", "--max-in-flight 0 (exit 2)", "must be at least 1", CWL),
    Case("cwl-provenance-path", "oscar-cwl --provenance/--ro-crate",
         "a path in a folder that does not exist, or under a file (exit 2, before any job)", "choose another path",
         CWL),
    # Airflow operators (real Airflow: dag.test() of tests/airflow/dags; tests/airflow/test_dags.py)
    Case("af-conn-missing", "Airflow operator", "oscar_conn_id naming no Airflow connection", "is not defined",
         AIRFLOW),
    Case("af-conn-no-endpoint", "Airflow operator", "OSCAR connection without a host", "has no endpoint", AIRFLOW),
    Case("af-conn-no-password", "Airflow operator", "OSCAR connection with a login but no password",
         "but no password", AIRFLOW),
    Case("af-cred-wrong", "Airflow operator", "OSCAR connection with a wrong password",
         "Fix the login/password or token", AIRFLOW),
    Case("af-fdl-invalid", "Airflow operator", "FDL with service name 'Bad_Name!'", "DNS-1123", AIRFLOW),
    Case("af-fdl-missing", "Airflow operator", "FDL file that does not exist", "does not exist", AIRFLOW),
    Case("af-service-missing", "Airflow operator", "service that does not exist", "deploy it first", AIRFLOW),
    Case("af-input-missing", "Airflow operator", "input file that does not exist", "fix the path", AIRFLOW),
    Case("af-inputs-empty", "Airflow operator", "one_job_per_input=True with no inputs", "give input files",
         AIRFLOW),
    Case("af-args-conflict", "Airflow DAG file", "OscarRunServiceOperator given both data and input_path",
         "either data or input_path", AIRFLOW),
    # itwinai steps (real itwinai components and pipelines; tests/itwinai)
    Case("it-service-missing", "itwinai OscarStep", "service name that is not deployed (also via exec-pipeline)",
         "deploy it, or give the step its definition", ITWINAI),
    Case("it-profile-unknown", "itwinai OscarStep", "cluster: profile not in ~/.oscar-cli/config.yaml",
         "no cluster profile named", ITWINAI),
    Case("it-cred-wrong", "itwinai OscarStep", "wrong password", "credentials were refused", ITWINAI),
    Case("it-fdl-missing", "itwinai OscarStep", "service: FDL file that does not exist",
         "cannot read the service definition", ITWINAI),
    Case("it-input-missing", "itwinai OscarStep", "a Path argument that does not exist", "fix the path", ITWINAI),
    Case("it-output-missing", "itwinai OscarStep", "outputs: naming a file the script does not write",
         "did not write", ITWINAI),
    Case("it-mode-invalid", "itwinai OscarStep", "mode: fast", "must be one of", ITWINAI),
    Case("it-sync-too-large", "itwinai OscarStep", "inputs too large for mode: sync", "use mode 'async' or 'auto'",
         ITWINAI),
]

_BY_ID = {c.id: c for c in CASES}
CORE_CASES = [c for c in CASES if c.suite == CORE]
ADAPTER_CASES = [c for c in CASES if c.suite != CORE]


def case(case_id: str) -> Case:
    """The case named ``case_id`` (KeyError for an id the catalogue does not have)."""
    return _BY_ID[case_id]


def expect(case_id: str) -> str:
    """The words the user must see for ``case_id``: adapter tests assert with this, not a copy."""
    return case(case_id).expect


def counts() -> dict[str, int]:
    """Cases per suite, e.g. ``{"tests/reliability": 37, "tests/cwl": 9, ...}``."""
    return dict(Counter(c.suite for c in CASES))


def markdown() -> str:
    rows = ["| id | where | bad input | the user sees (words) | tested in |", "|---|---|---|---|---|"]
    rows += [f"| `{c.id}` | {c.surface} | {c.what} | {c.expect} | `{c.suite}` |" for c in CASES]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown())
