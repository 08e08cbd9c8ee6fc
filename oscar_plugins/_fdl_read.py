"""An FDL file's text and raw data, read as oscar-cli and OSCAR read them (for :func:`~._fdl.load_fdl`).

Each piece answers one question about what a user wrote, before the service model validates it: the YAML
(tolerant where oscar-cli's parser is), values OSCAR takes as strings, ``environment`` keys in any case,
template placeholders left in OSCAR's examples, the script file, and storage providers left empty.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ._exceptions import FDLError

__all__ = ["as_oscar_reads", "blank", "check_providers_used", "empty_providers", "keys_are", "parse_yaml",
           "provider_refs", "read_fdl_text", "script_content", "warn_once", "without"]

_log = logging.getLogger(__name__)
#: Warnings given once per process, by (file, subject).
_warned: set[tuple[str, str]] = set()


# -- reading the YAML text --------------------------------------------------------------------------------
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
#: What PyYAML's scanner says when it stops at a character that begins no token.
_CANNOT_START = "that cannot start any token"
#: Whitespace from a rejected tab to the end of its line, or to a comment.
_TO_LINE_END = re.compile(r"[ \t]+(?=#|\r|\n|\Z)")
_YAML_HINTS = (
    ("'\\t'", "YAML allows a tab only inside quotes or block text: replace it with spaces"),
    (_CANNOT_START, "quote the value"),
    ("mapping values are not allowed", "quote the value (it holds ': ') or fix the indentation of this key"),
    ("could not find expected ':'", "write 'key: value' (a space after the colon) or fix the indentation"),
    ("expected <block end>", "fix the indentation: align this line with the other keys of its section"),
    ("did not find expected key", "fix the indentation: align this line with the other keys of its section"),
    ("did not find expected '-' indicator", "align the list items: each starts with '- ' at the same column"),
    ("found undefined alias", "quote the value (it starts with '*')"),
    ("found duplicate anchor", "rename one of the '&' anchors"),
    ("end of stream", "close the quote or bracket opened before"),
    ("<stream end>", "close the quote or bracket opened before"),
    ("expected ',' or ']'", "separate the list's items with ',' and close it with ']'"),
    ("expected ',' or '}'", "separate the mapping's entries with ',' and close it with '}'"),
)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that also keeps, per mapping, the text of each value it did not read as a string.

    OSCAR takes environment variables, annotations, labels and most service fields as strings; oscar-cli's
    YAML parser hands it what was written. PyYAML would turn ``SEND_SNS: false`` into ``False``,
    ``MODE: 0755`` into ``493`` and ``AT: 12:30`` into ``750`` (YAML 1.1): those keep their text instead.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        #: ``id(mapping)`` -> {key: text} for the mapping's non-string scalar values.
        self.written: dict[int, dict[Any, str]] = {}

    def construct_fdl_map(self, node: yaml.MappingNode) -> Iterator[dict[Any, Any]]:
        data: dict[Any, Any] = {}
        yield data
        data.update(self.construct_mapping(node))
        texts: dict[Any, str] = {}
        for key_node, value_node in node.value:  # merge keys ('<<') are flattened by now
            if isinstance(value_node, yaml.ScalarNode) and value_node.tag != _STR_TAG:
                key = self.construct_object(key_node)
                if isinstance(key, Hashable):
                    texts[key] = "" if value_node.tag == _NULL_TAG else value_node.value
        self.written[id(data)] = texts


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_fdl_map)


def parse_yaml(text: str, label: str) -> tuple[Any, dict[int, dict[Any, str]]]:
    """The FDL's data, and the text of values not read as strings (see :class:`_Loader`).

    oscar-cli's parser (goccy/go-yaml 1.9.8) and libyaml accept a tab after a value at the end of a line
    (``log_level: CRITICAL<TAB><TAB>``, in OSCAR's own simple-test and yolov8 examples); PyYAML's scanner stops
    there. Such a tab becomes a space and the text is parsed again. Only tabs the scanner stopped at are
    touched, so block text (an inline ``script: |``) never changes, and the result does not depend on
    whether PyYAML was built with libyaml.
    """
    for _ in range(text.count("\t") + 1):
        loader = _Loader(text)
        try:
            return loader.get_single_data(), loader.written
        except yaml.MarkedYAMLError as exc:
            fixed = _tab_at_line_end_removed(text, exc)
            if fixed is None:
                raise FDLError(_yaml_problem(label, text, exc), source=label) from None
            text = fixed
        except yaml.YAMLError as exc:  # a reader error: a character YAML does not allow
            position = getattr(exc, "position", 0)
            line = text.count("\n", 0, position) + 1
            character = getattr(exc, "character", "?")
            raise FDLError(f"{label}: not valid YAML at line {line}: the character {character!r} is not allowed in "
                           "YAML: remove it", source=label) from None
        finally:
            loader.dispose()
    raise FDLError(f"{label}: not valid YAML: tabs could not be told apart from the text", source=label)


def _tab_at_line_end_removed(text: str, exc: yaml.MarkedYAMLError) -> str | None:
    mark = exc.problem_mark
    if mark is None or text[mark.index:mark.index + 1] != "\t":
        return None
    run = _TO_LINE_END.match(text, mark.index)
    if run is None:
        return None
    return text[:run.start()] + run.group().replace("\t", " ") + text[run.end():]


def _yaml_problem(label: str, text: str, exc: yaml.MarkedYAMLError) -> str:
    """One line: where (line, column and the line's text), what PyYAML found, and what to change."""
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "not valid YAML"
    hint = next((h for key, h in _YAML_HINTS if key in problem), "fix the YAML there")
    if mark is None:
        return f"{label}: not valid YAML: {problem}: {hint}"
    lines = text.splitlines()
    shown = lines[mark.line].strip() if mark.line < len(lines) else ""
    context = exc.context_mark
    opened = (f" ({exc.context} at line {context.line + 1})"
              if exc.context and context is not None and context.line != mark.line else "")
    return (f"{label}: not valid YAML at line {mark.line + 1}, column {mark.column + 1} ({shown[:80]!r}): "
            f"{problem}{opened}: {hint}")


# -- one service as OSCAR reads it ------------------------------------------------------------------------
#: ``environment`` keys, matched without regard to case as the server's Go encoding/json does.
_ENV_KEYS = ("variables", "secrets")


def _flow(value: Any) -> str:
    return f"[{', '.join(_flow(v) for v in value)}]" if isinstance(value, list) else str(value)


def keys_are(keys: Sequence[str]) -> str:
    return f"{keys[0]} is" if len(keys) == 1 else f"{', '.join(keys)} are"


class _Strings:
    """Reads values OSCAR takes as strings, noting template placeholders (a YAML list where a string is
    expected: ``vo: [vo of the cluster]``, ``AWS_ACCESS_KEY_ID: [aws_access_key_id]``)."""

    def __init__(self, written: Mapping[int, Mapping[Any, str]]) -> None:
        self.written = written
        self.placeholders: list[tuple[str, Any]] = []

    def value(self, value: Any, text: str | None, where: str, *, null: Any) -> Any:
        if isinstance(value, str | dict):
            return value
        if isinstance(value, list):
            self.placeholders.append((where, value))
            return value
        if value is None:
            return null
        if text is not None:
            return text
        return ("true" if value else "false") if isinstance(value, bool) else str(value)  # a dict, not a file

    def mapping(self, data: dict[Any, Any], where: str) -> dict[Any, Any]:
        texts = self.written.get(id(data), {})
        return {k: self.value(v, texts.get(k), f"{where}.{k}", null="") for k, v in data.items()}


def _environment(env: dict[Any, Any], strings: _Strings) -> dict[Any, Any]:
    """``environment`` with ``Variables:`` read as ``variables``. OSCAR's examples write ``Variables`` (the
    Go field name of oscar-cli's types); the server binds JSON with encoding/json, which matches keys
    without regard to case, so it takes them, while oscar-cli's goccy parser silently drops them (and a
    lowercase ``variables``). We read any case, as the server does: maps under two spellings are merged in
    file order, a later key winning, as encoding/json fills one map."""
    out: dict[Any, Any] = {}
    for key, value in env.items():
        canonical = key.lower() if isinstance(key, str) and key.lower() in _ENV_KEYS else key
        if canonical in _ENV_KEYS and isinstance(value, dict):
            before = out.get(canonical)
            merged: dict[Any, Any] = before if isinstance(before, dict) else {}
            out[canonical] = {**merged, **strings.mapping(value, f"environment.{canonical}")}
        else:
            out[canonical] = value
    return out


def as_oscar_reads(raw: dict[str, Any], written: Mapping[int, Mapping[Any, str]], string_fields: Collection[str],
                   label: str, where: str) -> dict[str, Any]:
    """A copy of one service's mapping with strings where OSCAR reads strings: ``string_fields``, ``environment``
    maps, annotations and labels (see :class:`_Loader`), and ``environment`` keys in any case.

    Raises:
        FDLError: template placeholders are left, all named.
    """
    strings = _Strings(written)
    texts = written.get(id(raw), {})
    out = {k: (strings.value(v, texts.get(k), k, null=None) if k in string_fields else v) for k, v in raw.items()}
    for key in ("annotations", "labels"):
        if isinstance(out.get(key), dict):
            out[key] = strings.mapping(out[key], key)
    if isinstance(out.get("environment"), dict):
        out["environment"] = _environment(out["environment"], strings)
    if strings.placeholders:
        many = len(strings.placeholders) > 1
        if many:
            shown = ", ".join(f"'{field}' ({_flow(value)})" for field, value in strings.placeholders)
            what = f"fields {shown} are template placeholders (YAML lists where OSCAR expects strings): replace each"
        else:
            ((field, value),) = strings.placeholders
            what = (f"field '{field}' is the template placeholder {_flow(value)} (a YAML list where OSCAR expects a "
                    "string): replace it")
        raise FDLError(
            f"{where}: service {raw.get('name')!r}: {what} with a value (quoted if it starts with '['), or delete "
            "the line",
            source=label, service=raw.get("name"), field=strings.placeholders[0][0])
    return out


def script_content(raw: dict[str, Any], base: Path | None, label: str, where: str) -> None:
    """Replace ``script`` with the content of the file it names.

    The path is relative to the FDL file (oscar-cli >= 1.12.0); where no file is there, relative to the
    working directory (oscar-cli before commit cce5e47, Oct 2025, which users' repositories still rely on,
    running from the FDL's folder). A multi-line value, or one that does not look like a file name, is the
    script itself.
    """
    name, script = raw.get("name"), raw.get("script")
    if script is None or (isinstance(script, str) and not script.strip()):
        beside = sorted(p.name for p in base.glob("*.sh")) if base is not None else []
        hint = f" ({', '.join(beside[:3])} {'is' if len(beside) == 1 else 'are'} beside it)" if beside else ""
        raise FDLError(
            f"{where}: service {name!r}: field 'script' is missing: OSCAR requires a script for every service "
            f"(its API refuses one without), so this FDL is incomplete: add 'script: <file>'{hint} or an inline "
            "script", source=label, service=name, field="script")
    if not isinstance(script, str) or base is None or "\n" in script:
        return
    beside_fdl, in_cwd = (base / script).absolute(), (Path.cwd() / script).absolute()
    if beside_fdl.is_file():
        if in_cwd.is_file() and not in_cwd.samefile(beside_fdl) and in_cwd.read_bytes() != beside_fdl.read_bytes():
            warn_once(label, str(beside_fdl),
                      f"{where}: service {name!r}: script {script!r} exists beside the FDL file ({beside_fdl}) and "
                      f"in the current directory ({in_cwd}), with different content: using {beside_fdl}")
        raw["script"] = beside_fdl.read_text(encoding="utf-8")
    elif in_cwd.is_file():
        _log.info("%s: service %r: script %s read from the current directory", where, name, in_cwd)
        raw["script"] = in_cwd.read_text(encoding="utf-8")
    elif script.endswith((".sh", ".bash")) or "/" in script or (not any(c.isspace() for c in script)
                                                                 and Path(script).suffix):
        places = f"beside the FDL file ({beside_fdl})"
        if in_cwd != beside_fdl:
            places += f" nor in the current directory ({in_cwd})"
        others = sorted(p.name for p in base.glob("*.sh"))
        hint = f" ({', '.join(others[:3])} {'is' if len(others) == 1 else 'are'} beside it)" if others else ""
        raise FDLError(f"{where}: service {name!r}: field 'script': file {script!r} not found {places}: fix "
                       f"'script:'{hint} or put the file there", source=label, service=name, field="script")


def warn_once(label: str, subject: str, message: str) -> None:
    if (label, subject) not in _warned:
        _warned.add((label, subject))
        _log.warning("%s", message)


# -- storage providers and clusters left as templates -----------------------------------------------------
#: Keys a provider cannot work without; left empty in a file, they are template placeholders.
_PROVIDER_KEYS = {"minio": ("endpoint", "access_key", "secret_key"), "s3": ("access_key", "secret_key"),
                  "onedata": ("oneprovider_host", "token", "space"), "webdav": ("hostname", "login", "password"),
                  "rucio": ("host", "account", "rse")}


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def empty_providers(providers: Any) -> dict[str, tuple[str, ...]]:
    """``kind.id`` (kind lowercased) -> the keys it has, left empty."""
    found: dict[str, tuple[str, ...]] = {}
    for kind, entries in (providers.items() if isinstance(providers, dict) else ()):
        for ident, entry in (entries.items() if isinstance(entries, dict) else ()):
            if isinstance(entry, dict):
                empty = tuple(k for k in _PROVIDER_KEYS.get(str(kind).lower(), ()) if k in entry and blank(entry[k]))
                if empty:
                    found[f"{str(kind).lower()}.{ident}"] = empty
    return found


def without(providers: dict[str, Any], refs: Iterable[str]) -> dict[str, Any]:
    out = {kind: dict(entries) if isinstance(entries, dict) else entries for kind, entries in providers.items()}
    for kind, entries in out.items():
        if isinstance(entries, dict):
            for ident in [i for i in entries if f"{str(kind).lower()}.{i}" in refs]:
                entries.pop(ident)
    return out


def check_providers_used(raw: dict[str, Any], empty: Mapping[str, tuple[str, ...]], label: str,
                         where: str) -> None:
    """A service's ``input``/``output``/``mount`` may not use a provider whose keys were left empty."""
    for field in ("input", "output", "mount"):
        entries = raw.get(field)
        for entry in (entries if isinstance(entries, list) else [entries]):
            if not isinstance(entry, dict):
                continue
            ref = str(entry.get("storage_provider") or "minio.default")
            kind, _, ident = ref.partition(".")
            key = f"{kind.lower()}.{ident or 'default'}"
            if key in empty:
                raise FDLError(
                    f"{where}: service {raw.get('name')!r}: {field} uses storage provider {ref!r}, whose "
                    f"storage_providers.{key} {keys_are(empty[key])} empty (template placeholders): fill them in, "
                    "or use another provider", source=label, service=raw.get("name"),
                    field=f"storage_providers.{key}.{empty[key][0]}")


# -- the file ---------------------------------------------------------------------------------------------
def read_fdl_text(path: Path) -> tuple[Any, dict[int, dict[Any, str]]]:
    """An FDL file's data and written texts (:func:`parse_yaml`); UTF-8, with or without a byte order mark."""
    label = str(path)
    if not path.is_file():
        raise FDLError(f"FDL file {label} does not exist: check the path", source=label)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FDLError(f"{label} is not UTF-8 text (byte {exc.start}): save it as UTF-8", source=label) from None
    return parse_yaml(text, label)


def provider_refs(providers: Any) -> set[str]:
    """Every ``kind.id`` (kind lowercased) a ``storage_providers`` mapping defines."""
    return {f"{str(kind).lower()}.{ident}" for kind, entries in (providers.items() if isinstance(providers, dict)
                                                                 else ()) if isinstance(entries, dict)
            for ident in entries}
