"""The pure parts of ``--provenance``/``--ro-crate``: endpoints without credentials, records, path checks."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import pytest

from oscar_plugins.cwl.crate import check_output_path, prepare
from oscar_plugins.cwl.plan import Source
from oscar_plugins.cwl.provenance import OffloadRecord, input_hashes, public_endpoint, tree_hashes


@pytest.mark.parametrize(("endpoint", "public"), [
    ("https://oscar.example.org", "https://oscar.example.org"),
    ("https://admin:s3cret@oscar.example.org:8443/api/", "https://oscar.example.org:8443/api/"),
    ("https://oscar.example.org/?token=s3cret&x=1#frag", "https://oscar.example.org/"),
    ("http://user@[::1]:8080", "http://[::1]:8080"),
])
def test_the_endpoint_keeps_no_credential(endpoint, public):
    assert public_endpoint(endpoint) == public


def test_a_record_masks_secrets_and_credentials_in_the_endpoint():
    record = OffloadRecord(step="s", activity="urn:uuid:1", label="Run of s", cluster="prod",
                           endpoint="https://oscar:pw@oscar.example.org/?token=tk", service="cwl-x", job="cwl-x-1",
                           image="alpine", cpu="1", memory="256Mi",
                           inputs=[{"path": "/a", "sha256": "0" * 64, "token": "tk"}])
    data = record.as_dict()
    assert data["endpoint"] == "https://oscar.example.org/"
    assert data["inputs"][0]["token"] == "***"
    assert "pw" not in repr(data) and "tk" not in repr(data)


def test_hashes_of_inputs_and_trees(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "b.txt").write_bytes(b"b")
    (tmp_path / "d" / "a.txt").write_bytes(b"a")
    (tmp_path / "d" / "link").symlink_to("a.txt")
    (tmp_path / "f.txt").write_bytes(b"f")
    assert [e["path"] for e in tree_hashes(tmp_path / "d")] == ["a.txt", "sub/b.txt"]  # links are not followed
    found = input_hashes([Source("0", str(tmp_path / "f.txt"), "file"), Source("1", str(tmp_path / "d"), "tree"),
                          Source("2", "s3://bucket/key", "file")])
    assert found[0]["sha256"] == hashlib.sha256(b"f").hexdigest() and found[0]["size"] == 1
    assert found[1]["files"][1]["sha256"] == hashlib.sha256(b"b").hexdigest()
    assert found[2] == {"location": "s3://bucket/key", "sha256": None}  # never read here


def test_output_paths_are_checked(tmp_path):
    (tmp_path / "file").write_text("")
    (tmp_path / "folder").mkdir()
    assert check_output_path(str(tmp_path / "new"), "--provenance", kind="folder") is None
    assert check_output_path(str(tmp_path / "folder"), "--provenance", kind="folder") is None  # replaced
    assert "is a folder" in str(check_output_path(str(tmp_path / "folder"), "--ro-crate", kind="file"))
    assert "is a file" in str(check_output_path(str(tmp_path / "file"), "--provenance", kind="folder"))
    problem = str(check_output_path(str(tmp_path / "file" / "x.zip"), "--ro-crate", kind="file"))
    assert "is a file, not a folder" in problem and "choose another path" in problem
    problem = str(check_output_path(str(tmp_path / "none" / "x"), "--provenance", kind="folder"))
    assert str(tmp_path / "none") in problem and "create it first" in problem


def test_a_crate_without_provenance_gets_a_temporary_research_object(tmp_path):
    args = argparse.Namespace(provenance=None, ro_crate=str(tmp_path / "c.zip"))
    assert prepare(args) is None
    assert args.provenance and args.oscar_temporary_ro and not Path(args.provenance).exists()  # cwltool makes it
    same = argparse.Namespace(provenance=str(tmp_path / "x"), ro_crate=str(tmp_path / "x"))
    assert "same path" in str(prepare(same))
