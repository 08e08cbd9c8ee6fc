"""The oscar:Offload hint, the offload decision, and the extension schema that makes --strict accept it."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from cwltool.context import LoadingContext
from schema_salad.exceptions import ValidationException

from oscar_plugins.cwl.hints import NAMESPACE, OFFLOAD, HintError, OffloadHint, extension_schema, parse_offload_hint
from oscar_plugins.cwl.job import OffloadTarget
from oscar_plugins.cwl.tool import DEFAULT_IMAGE, OscarSettings, offload_target

from .conftest import BIN, DATA


def test_parse_hint_short_and_expanded_keys():
    assert parse_offload_hint(None) is None
    assert parse_offload_hint({"class": OFFLOAD}) == OffloadHint()
    hint = parse_offload_hint({"class": OFFLOAD, "cluster": "hpc", NAMESPACE + "cpu": 4, "memory": 2048,
                               "gpu": 1, "interLinkNode": "vk"})
    assert hint == OffloadHint(True, "hpc", "4", "2048Mi", True, "vk")
    assert parse_offload_hint({"memory": "16Gi", "cpu": "500m", "offload": False}) == \
        OffloadHint(False, None, "500m", "16Gi")


@pytest.mark.parametrize("bad", [{"cpu": "lots"}, {"memory": "big"}, {"offload": "yes"}, {"cluster": 3},
                                 {"cpu": 0}, {"gpu": "a100"}])
def test_bad_hints_are_named(bad):
    with pytest.raises(HintError, match="oscar:Offload"):
        parse_offload_hint(bad)


def _decide(mode: str, doc: dict, *, hints=None, requirements=None) -> OffloadTarget | None:
    ctx = LoadingContext()
    ctx.hints, ctx.requirements = hints, requirements
    return offload_target(doc, ctx, OscarSettings(offload=mode, cluster="default"))


def test_offload_modes_and_inheritance():
    plain = {"class": "CommandLineTool"}
    hinted = {"class": "CommandLineTool", "hints": [{"class": OFFLOAD, "cpu": "2", "cluster": "hpc"}]}
    local = {"class": "CommandLineTool", "hints": [{"class": OFFLOAD, "offload": False}]}
    assert _decide("all", plain) == OffloadTarget("default", DEFAULT_IMAGE)
    assert _decide("all", hinted) == OffloadTarget("hpc", DEFAULT_IMAGE, cpu="2")
    assert _decide("all", local) is None
    assert _decide("hinted", plain) is None
    assert _decide("hinted", hinted) is not None
    assert _decide("none", hinted) is None
    # a hint on the enclosing step or workflow counts; the tool's own wins
    assert _decide("hinted", plain, hints=[{"class": OFFLOAD, "cluster": "step"}]).cluster == "step"
    assert _decide("hinted", hinted, hints=[{"class": OFFLOAD, "cluster": "step"}]).cluster == "hpc"
    with pytest.raises(ValidationException, match="cpu"):
        _decide("all", {"class": "CommandLineTool", "hints": [{"class": OFFLOAD, "cpu": "many"}]})


def test_extension_schema_is_valid_yaml_with_the_record():
    for ext in (None, "extensions-v1.2.yml"):
        doc = yaml.safe_load(extension_schema(ext))
        assert any(item.get("name") == OFFLOAD for item in doc["$graph"])


def test_strict_validation_accepts_the_hint_without_warnings():
    proc = subprocess.run([str(BIN / "oscar-cwl"), "--strict", "--validate", "mixed-wf.cwl"], cwd=DATA,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "is valid CWL" in proc.stdout
    assert "Unknown hint" not in proc.stderr and "undefined reference" not in proc.stderr


def test_batch_is_a_whole_number_of_jobs() -> None:
    from oscar_plugins.cwl.hints import HintError, parse_offload_hint

    assert parse_offload_hint({"class": "oscar:Offload", "batch": 20}).batch == 20
    assert parse_offload_hint({"class": "oscar:Offload"}).batch is None
    for bad in (0, -1, 2.5, "10", True):
        with pytest.raises(HintError, match="batch must be a whole number of jobs, at least 1"):
            parse_offload_hint({"class": "oscar:Offload", "batch": bad})
