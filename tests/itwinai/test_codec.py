"""Pure pieces: the artifact format, the step's file conventions, mode choice, the output-list prelude."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from oscar_plugins.itwinai import StepConfigError, remote
from oscar_plugins.itwinai._files import ARGS_FILE, read_output, write_args
from oscar_plugins.itwinai._service import OUTPUT_LIST, step_script
from oscar_plugins.itwinai._transport import choose_mode, sync_body_size


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value


def roundtrip(value, tmp_path: Path, *, allow_pickle: bool = False):
    enc = remote.Encoder(tmp_path / "enc", "oi-in-", link_files=False)
    (tmp_path / "enc").mkdir(parents=True, exist_ok=True)
    node = json.loads(json.dumps(enc.encode(value)))  # the node itself must be JSON
    return enc, remote.decode(node, tmp_path / "enc", allow_pickle=allow_pickle, files_to=tmp_path / "kept")


def test_tree_roundtrip_keeps_types_and_values(tmp_path):
    src = tmp_path / "data.txt"
    src.write_text("hello")
    value = (torch.arange(6, dtype=torch.float16).reshape(2, 3), np.linspace(0, 1, 5),
             {"a": [1, 2.5, None, True, "x"], 3: b"\x00\x01"}, [src], "plain")
    enc, back = roundtrip(value, tmp_path)
    assert isinstance(back, tuple) and len(back) == 5
    assert back[0].dtype == torch.float16 and torch.equal(back[0], value[0])
    assert back[1].dtype == np.float64 and np.array_equal(back[1], value[1])
    assert back[2] == {"a": [1, 2.5, None, True, "x"], 3: b"\x00\x01"}
    assert back[3][0] == tmp_path / "kept" / "data.txt" and back[3][0].read_text() == "hello"
    assert back[4] == "plain"
    assert sorted(p.suffix for p in enc.files) == [".bin", ".npy", ".pt", ".txt"]


def test_pickled_values_need_consent(tmp_path):
    with pytest.raises(remote.PickleRefused, match="Opaque"):
        roundtrip([Opaque(3)], tmp_path)
    _, back = roundtrip([Opaque(3)], tmp_path / "again", allow_pickle=True)
    assert back[0].value == 3


def test_decode_refuses_unsafe_names(tmp_path):
    with pytest.raises(ValueError, match="unsafe"):
        remote.decode({"k": "bytes", "f": "../etc/passwd"}, tmp_path, allow_pickle=False)


def test_substitute_inputs(tmp_path):
    cfg = {"_target_": "m.C", "ckpt": "oscar-input://model.pt", "more": ["oscar-input://a.py", 3]}
    out = remote.substitute_inputs(cfg, tmp_path)
    assert out == {"_target_": "m.C", "ckpt": str(tmp_path / "model.pt"), "more": [str(tmp_path / "a.py"), 3]}


def test_service_script_is_valid_shell_and_embeds_the_runner():
    script = remote.service_script("python3 -S", prelude="export FOO=1")
    assert script.startswith(remote.RUNNER_MARKER)
    assert "def run(inputs_dir: Path, output_dir: Path)" in script
    assert subprocess.run(["/bin/sh", "-n", "-c", script], check=False).returncode == 0


def test_step_args_become_files_and_outputs_read_back(tmp_path):
    src = tmp_path / "input.csv"
    src.write_text("1,2\n")
    paths = write_args((torch.ones(2), np.arange(3), {"k": [1]}, b"raw", src, Opaque(1)), tmp_path / "in", "s")
    names = [p.name for p in paths]
    assert names == ["arg0.pt", "arg1.npy", "arg2.json", "arg3.bin", "input.csv", "arg5.pkl", ARGS_FILE]
    assert json.loads((tmp_path / "in" / ARGS_FILE).read_text()) == names[:-1]
    keep = tmp_path / "keep"
    assert torch.equal(read_output(paths[0], "x.pt", allow_pickle=False, keep_dir=keep, step="s"), torch.ones(2))
    assert read_output(paths[2], "x.json", allow_pickle=False, keep_dir=keep, step="s") == {"k": [1]}
    assert read_output(paths[4], "input.csv", allow_pickle=False, keep_dir=keep, step="s") == keep / "input.csv"
    with pytest.raises(StepConfigError, match="allow_pickle"):
        read_output(paths[5], "arg5.pkl", allow_pickle=False, keep_dir=keep, step="s")


def test_unpicklable_argument_names_the_step(tmp_path):
    with pytest.raises(StepConfigError, match=r"step 'my-step': argument 0 \(generator\)"):
        write_args(((i for i in range(3)),), tmp_path, "my-step")


def test_mode_choice_and_too_large_for_sync():
    small, big = 10_000, 5 * 2**20
    assert choose_mode("auto", input_bytes=small, n_inputs=2, timeout=None, sync_limit_mb=1, step="s") == "sync"
    assert choose_mode("auto", input_bytes=big, n_inputs=2, timeout=None, sync_limit_mb=1, step="s") == "async"
    assert choose_mode("auto", input_bytes=small, n_inputs=2, timeout=3600, sync_limit_mb=1, step="s") == "async"
    with pytest.raises(StepConfigError, match=r"step 'big': .*too large for mode 'sync'.*'async' or 'auto'"):
        choose_mode("sync", input_bytes=big, n_inputs=2, timeout=None, sync_limit_mb=1, step="big")
    with pytest.raises(StepConfigError, match="300 s"):
        choose_mode("sync", input_bytes=small, n_inputs=1, timeout=600, sync_limit_mb=1, step="s")
    assert sync_body_size(3 * 2**20, 1) > 5 * 2**20  # base64 twice: ~16/9 of the data


def test_step_prelude_lists_outputs_and_keeps_exit_code(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    script = step_script("echo 1 > \"$TMP_OUTPUT_DIR/b.txt\"; mkdir -p \"$TMP_OUTPUT_DIR/sub\"\n"
                         "echo 2 > \"$TMP_OUTPUT_DIR/sub/a.npy\"\nexit 5\n")
    assert step_script(script) == script  # idempotent
    proc = subprocess.run(["/bin/sh", "-c", script], env={**os.environ, "TMP_OUTPUT_DIR": str(out)}, check=False)
    assert proc.returncode == 5
    assert (out / OUTPUT_LIST).read_text().split() == ["./b.txt", "./sub/a.npy"]


def test_a_tensor_view_travels_without_the_storage_it_points_into(tmp_path):
    batch = torch.arange(8 * 1000, dtype=torch.float32).reshape(8, 1000)
    rows = list(batch)  # views into the batch, as a predictor's per-sample outputs often are
    enc, back = roundtrip({"row3": rows[3], "t": batch.t()}, tmp_path)
    assert torch.equal(back["row3"], rows[3]) and torch.equal(back["t"], batch.t())
    sizes = sorted(p.stat().st_size for p in enc.files)
    assert sizes[0] < 8000 < 32_000 < sizes[1]  # the row alone (4 kB); the transpose is the whole batch


def test_substitute_inputs_into_shipped_folders_and_refuses_escapes(tmp_path):
    out = remote.substitute_inputs({"d": "oscar-input://data", "f": "oscar-input://data/sub/x.h5"}, tmp_path)
    assert out == {"d": str(tmp_path / "data"), "f": str(tmp_path / "data" / "sub" / "x.h5")}
    for bad in ("oscar-input://data/../../etc", "oscar-input:///etc", "oscar-input://data//x"):
        with pytest.raises(ValueError, match="unsafe"):
            remote.substitute_inputs(bad, tmp_path)
