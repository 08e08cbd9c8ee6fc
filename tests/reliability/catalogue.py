"""The bad-input catalogue: each case, where it is hit, and the words the user must see.

``tests/reliability/test_bad_inputs.py`` runs every case; ``docs/RELIABILITY.md`` lists them (a test
keeps the two in step). Print the table with ``python -m tests.reliability.catalogue``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    id: str
    surface: str
    what: str
    expect: str  # words the message must contain


CASES = [
    Case("fdl-yaml", "CLI service apply", "FDL file that is not valid YAML", "is not valid YAML"),
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
    Case("job-body-oversized", "local cluster /job", "POST /job body over 1 MiB", "413"),
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
]


def markdown() -> str:
    rows = ["| id | where | bad input | the user sees (words) |", "|---|---|---|---|"]
    rows += [f"| `{c.id}` | {c.surface} | {c.what} | {c.expect} |" for c in CASES]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown())
