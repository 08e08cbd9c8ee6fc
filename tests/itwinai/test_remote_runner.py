"""The remote runner in this process: what a service does with a call, without a cluster."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import torch

from oscar_plugins.itwinai import remote
from oscar_plugins.itwinai._offload import pack_folder

HERE = Path(__file__).resolve().parent


def make_call(directory: Path, component: dict, args: tuple) -> Path:
    directory.mkdir(parents=True)
    enc = remote.Encoder(directory, "oi-in-", link_files=False)
    call = {"format": remote.FORMAT, "step": "t", "component": component, "args": enc.encode(args)}
    (directory / remote.CALL_FILE).write_text(json.dumps(call))
    return directory


def test_runner_builds_the_component_and_encodes_its_result(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    calls = make_call(tmp_path / "in", {"_target_": "pipeline_parts.Scale", "factor": 0.5},
                      (torch.full((2, 2), 4.0), None))
    assert remote.run(calls, tmp_path / "out") == 0
    summary = json.loads((tmp_path / "out" / remote.RESULT_FILE).read_text())
    tensor, array, seen = remote.decode(summary["result"], tmp_path / "out", allow_pickle=False)
    assert torch.equal(tensor, torch.full((2, 2), 2.0)) and array is None
    assert seen == {"shape": [2, 2], "dtype": "torch.float32", "array_type": "NoneType"}
    assert summary["seconds"] >= 0


def test_runner_exit_codes(tmp_path, capsys):
    bad_target = make_call(tmp_path / "a", {"_target_": "no_such_module.Thing"}, ())
    assert remote.run(bad_target, tmp_path / "out-a") == remote.EXIT_BAD_CALL
    assert "could not build component 'no_such_module.Thing'" in capsys.readouterr().err
    wrong = make_call(tmp_path / "b", {"_target_": "x.Y"}, ())
    data = json.loads((wrong / remote.CALL_FILE).read_text()) | {"format": "oscar-itwinai/0"}
    (wrong / remote.CALL_FILE).write_text(json.dumps(data))
    assert remote.run(wrong, tmp_path / "out-b") == remote.EXIT_BAD_CALL
    assert "redeploy the service" in capsys.readouterr().err
    assert remote.main(["only-one-arg"]) == 2


def test_pickled_inputs_reach_the_component_and_its_failure_is_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(HERE))
    calls = make_call(tmp_path / "in", {"_target_": "pipeline_parts.Scale", "factor": 2}, (torch.ones(1), {1, 2}))
    assert remote.run(calls, tmp_path / "out") == remote.EXIT_FAILED
    err = capsys.readouterr().err
    assert "unsupported operand type(s) for *: 'set' and 'int'" in err  # the set arrived, unpickled
    assert "step 't': Scale.execute raised" in err


def test_runner_unpacks_shipped_folders_before_building_the_component(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "x.txt").write_text("inside")
    calls = make_call(tmp_path / "in", {"_target_": "pipeline_parts.ReadText", "path": "oscar-input://data/sub/x.txt"},
                      ())
    pack_folder(data, calls / ("data" + remote.DIR_ARCHIVE_SUFFIX))
    call = json.loads((calls / remote.CALL_FILE).read_text())
    (calls / remote.CALL_FILE).write_text(json.dumps(call | {"format": remote.FORMAT_DIRS,
                                                             "dirs": {"data.oi-dir.tar": "data"}}))
    assert remote.run(calls, tmp_path / "out") == 0
    summary = json.loads((tmp_path / "out" / remote.RESULT_FILE).read_text())
    assert remote.decode(summary["result"], tmp_path / "out", allow_pickle=False) == "inside"
    assert (calls / "data" / "sub" / "x.txt").read_text() == "inside"

    evil = tmp_path / "evil"
    evil.mkdir()
    with tarfile.open(evil / "data.oi-dir.tar", "w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        tar.addfile(info)
    with pytest.raises(ValueError, match="unsafe"):
        remote.unpack_dir(evil / "data.oi-dir.tar", evil / "data")
    with tarfile.open(evil / "link.tar", "w") as tar:
        info = tarfile.TarInfo("link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(ValueError, match="not a plain file or folder"):
        remote.unpack_dir(evil / "link.tar", evil / "link")
    assert not (tmp_path / "escaped.txt").exists() and not (evil / "link").exists()
