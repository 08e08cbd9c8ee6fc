"""The pure job builder, and the runner script executed for real with /bin/sh (no cluster needed)."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from cwltool.pathmapper import MapperEnt

from oscar_plugins.cwl.job import process_status
from oscar_plugins.cwl.pathmapper import OscarPathMapper, split_s3
from oscar_plugins.cwl.plan import Inline, JobPlan, Layout, Placement, Source, Url, build_placements, render_job_script
from oscar_plugins.cwl.runner import RUNNER_SCRIPT, RunnerSpec, format_cpu, format_memory
from oscar_plugins.cwl.staging import (
    INLINE_FILE_LIMIT,
    fix_symlinks,
    pack_tree,
    resolve_sources,
    unpack_batch,
    unpack_result,
)


def _layout(tmp_path: Path) -> Layout:
    return Layout.new("job1", str(tmp_path / "pod"))


def _run(tmp_path: Path, plan: JobPlan, refs: dict[str, Inline | Url], env: dict[str, str] | None = None):
    """Run the runner service's script on a job script, as the oscar-plugins wrapper would."""
    result = tmp_path / "result"
    result.mkdir(exist_ok=True)
    job = tmp_path / "job.sh"
    job.write_text(render_job_script(plan, refs))
    run_env = {"PATH": os.environ["PATH"], "INPUT_FILE_PATH": str(job), "TMP_OUTPUT_DIR": str(result),
               "JOB_UUID": "job-1", **(env or {})}
    proc = subprocess.run(["/bin/sh", "-c", RUNNER_SCRIPT], env=run_env, capture_output=True, text=True, timeout=60)
    return proc, result


def _members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {m.name.removeprefix("./"): m for m in tar.getmembers() if m.name not in (".", "./")}


def _unpack(tmp_path: Path, result: Path) -> tuple[Path, Path]:
    """The runner's single result file, unpacked as the job does: (local outdir, meta folder)."""
    assert sorted(p.name for p in result.iterdir()) == ["result.tar"]
    dest, work = tmp_path / "local-out", tmp_path / "work"
    unpack_result(result / "result.tar", dest, work)
    return dest, work / "meta"


def test_placements_follow_container_rules(tmp_path):
    out = "/pod/out"
    inputs = [
        ("file:///a.txt", MapperEnt("/data/a.txt", "/pod/stage/stg1/a.txt", "File", True)),
        ("file:///child", MapperEnt("/data/d/x", "/pod/stage/stg2/d/x", "File", False)),  # not staged: skipped
        ("file:///d", MapperEnt("/data/d", "/pod/stage/stg2/d", "Directory", True)),
        ("file:///a.txt#dup", MapperEnt("/data/a.txt", "/pod/out/a.txt", "File", True)),
    ]
    iwd = [
        ("_:lit", MapperEnt("_:lit", "/pod/out/lit", "Directory", True)),
        ("_:c", MapperEnt("name=x\n", "/pod/out/x.conf", "CreateFile", True)),
        ("file:///w.txt", MapperEnt("/data/w.txt", "/pod/out/w.txt", "WritableFile", True)),
        ("file:///u.txt", MapperEnt("/data/u.txt", "/pod/stage/u.txt", "WritableFile", True)),
    ]
    sources, placements = build_placements([inputs, iwd], out, inplace_update=True)
    assert [(s.name, s.path, s.kind) for s in sources] == [
        ("s0", "/data/a.txt", "file"), ("s1", "/data/d", "tree"), ("s2", "/data/w.txt", "file"),
        ("s3", "/data/u.txt", "file")]
    by_target = {p.target: p for p in placements}
    assert by_target["/pod/stage/stg1/a.txt"] == Placement("file", "/pod/stage/stg1/a.txt", "s0", local="/data/a.txt")
    assert by_target["/pod/out/a.txt"].drop  # a read-only input in the outdir is relinked locally, not packed
    assert by_target["/pod/stage/stg2/d"].op == "tree"
    assert by_target["/pod/out/lit"].op == "dir"
    assert by_target["/pod/out/x.conf"].text == "name=x\n"
    assert by_target["/pod/out/w.txt"].writable and by_target["/pod/out/w.txt"].back is None
    assert by_target["/pod/stage/u.txt"].back == 0  # in-place update outside the outdir comes back
    assert "/pod/stage/stg2/d/x" not in by_target


def test_job_script_runs_command_with_cwl_semantics(tmp_path):
    lay = _layout(tmp_path)
    data = tmp_path / "in.txt"
    data.write_text("from the input\n")
    sources, placements = build_placements(
        [[("file:///in.txt", MapperEnt(str(data), f"{lay.stagedir}/stg/in.txt", "File", True))],
         [("_:conf", MapperEnt("it's $(literal) \\ text\n", f"{lay.outdir}/sub/conf.txt", "CreateFile", True))]],
        lay.outdir)
    script = ('cat "$1" sub/conf.txt; echo "to stderr" >&2; echo "$GREETING|$HOME|$TMPDIR|$(pwd)"; '
              'test -z "$INPUT_FILE_PATH$TMP_OUTPUT_DIR" && echo clean-env; read line; echo "stdin:$line"; exit 3')
    plan = JobPlan(lay, ["/bin/sh", "-c", script, "sh", f"{lay.stagedir}/stg/in.txt"],
                   env={"GREETING": "it's me", "HOME": lay.outdir, "TMPDIR": lay.tmpdir},
                   sources=sources, placements=placements, stdin=f"{lay.stagedir}/stg/in.txt",
                   stdout=f"{lay.outdir}/logs/out.txt", stderr=f"{lay.outdir}/err.txt")
    proc, result = _run(tmp_path, plan, {"s0": Inline(data.read_bytes())})
    assert proc.returncode == 0, proc.stderr
    dest, meta = _unpack(tmp_path, result)
    assert (meta / "exit-code").read_text().strip() == "3"
    assert (dest / "logs" / "out.txt").read_text().splitlines() == [
        "from the input", "it's $(literal) \\ text", f"it's me|{lay.outdir}|{lay.tmpdir}|{lay.outdir}", "clean-env",
        "stdin:from the input"]
    assert (dest / "err.txt").read_text() == "to stderr\n"  # stderr kept apart from stdout
    assert not (meta / "stdout.log").exists()
    assert not Path(lay.root).exists()  # the per-job directory is removed


def test_uncaptured_streams_timelimit_and_failed_fetch(tmp_path):
    lay = _layout(tmp_path)
    plan = JobPlan(lay, ["/bin/sh", "-c", "echo visible; echo noisy >&2; sleep 30"], timelimit=1)
    proc, result = _run(tmp_path, plan, {})
    assert proc.returncode == 0, proc.stderr
    _, meta = _unpack(tmp_path, result)
    assert (meta / "timedout").exists()
    assert (meta / "stdout.log").read_text() == "visible\n"
    assert (meta / "stderr.log").read_text() == "noisy\n"
    assert int((meta / "exit-code").read_text()) != 0

    lay2 = Layout.new("job2", str(tmp_path / "pod"))
    sources, placements = build_placements(
        [[("file:///x", MapperEnt("/nowhere/x", f"{lay2.stagedir}/x", "File", True))]], lay2.outdir)
    plan2 = JobPlan(lay2, ["true"], sources=sources, placements=placements)
    proc2, _ = _run(tmp_path, plan2, {"s0": Url("http://127.0.0.1:9/missing")})
    assert proc2.returncode == 70
    assert "could not download input s0" in proc2.stderr


def test_directories_drops_and_symlinks_round_trip(tmp_path):
    lay = _layout(tmp_path)
    src = tmp_path / "indir"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("b")
    tree = pack_tree(src, tmp_path / "work")
    assert tree == pack_tree(src, tmp_path / "work")  # reproducible: same content, same name
    sources, placements = build_placements(
        [[("file:///indir", MapperEnt(str(src), f"{lay.outdir}/indir", "Directory", True)),
          ("file:///b", MapperEnt(str(src / "sub" / "b.txt"), f"{lay.stagedir}/stg/b.txt", "File", True))],
         [("_:e", MapperEnt("_:e", f"{lay.outdir}/empty", "WritableDirectory", True))]], lay.outdir)
    script = (f"ls indir/sub > listing.txt && ln -s {lay.outdir}/listing.txt abs && "
              f"ln -s {lay.stagedir}/stg/b.txt in && ln -s /etc/hostname other && ln -s listing.txt rel && "
              "ln -s ../../../../../etc/hostname escape")
    plan = JobPlan(lay, ["/bin/sh", "-c", script], sources=sources, placements=placements)
    proc, result = _run(tmp_path, plan, {"s0": Inline(tree.read_bytes()), "s1": Inline(b"b")})
    assert proc.returncode == 0, proc.stderr
    members = _members(result / "result.tar")
    assert "out/indir" not in members  # read-only input: dropped before packing
    assert members["out/empty"].isdir() and members["out/abs"].issym()
    dest, _ = _unpack(tmp_path, result)
    fix_symlinks(dest, lay, placements)
    assert os.readlink(dest / "abs") == str(dest / "listing.txt")
    assert os.readlink(dest / "in") == str(src / "sub" / "b.txt")  # a staged input: the original
    assert not os.path.lexists(dest / "other")  # a link into the pod's own files has no meaning here
    assert (dest / "abs").read_text() == "b.txt\n"
    assert os.readlink(dest / "rel") == "listing.txt"  # relative links inside the outdir are kept as they are
    assert not os.path.lexists(dest / "escape")


def test_env_names_that_a_shell_cannot_export_are_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot be set"):
        render_job_script(JobPlan(_layout(tmp_path), ["true"], env={"BAD-NAME": "x"}), {})


def test_process_status_like_cwltool():
    assert process_status(0, [], [], []) == "success"
    assert process_status(5, [0, 5], [], [3]) == "success"
    assert process_status(3, [0, 5], [], [3]) == "permanentFail"
    assert process_status(4, [], [4], []) == "temporaryFail"
    assert process_status(1, [], [], []) == "permanentFail"
    assert process_status(0, [1], [], []) == "success"


def test_runner_service_names_and_quantities():
    spec = RunnerSpec("deltares/sfincs-cpu:latest", format_cpu(4), format_memory(16 * 1024))
    assert spec.cpu == "4" and spec.memory == "16384Mi"
    assert spec.name.startswith("cwl-") and len(spec.name) <= 39 and spec.name == spec.name.lower()
    assert spec.name == RunnerSpec("deltares/sfincs-cpu:latest", "4", "16384Mi").name  # stable
    assert spec.name != RunnerSpec("deltares/sfincs-cpu:latest", "4", "16384Mi", gpu=True).name
    svc = RunnerSpec("img", "0.5", "256Mi", gpu=True, interlink_node="vk").service()
    assert svc["enable_gpu"] and svc["interlink_node_name"] == "vk" and svc["output"][0]["path"] == f"{svc['name']}/out"
    assert format_cpu(0.25) == "0.25" and format_cpu(1.0) == "1" and format_memory(255.2) == "256Mi"


def test_small_inputs_travel_inline_and_large_ones_are_staged(tmp_path):
    small, big = tmp_path / "small.txt", tmp_path / "big.bin"
    small.write_bytes(b"x" * 10)
    big.write_bytes(b"y" * (INLINE_FILE_LIMIT + 1))
    staged: list[Path] = []

    def stage(path: Path) -> str:
        staged.append(path)
        return f"https://s3/{path.name}?sig"

    refs = resolve_sources([Source("s0", str(small), "file"), Source("s1", str(big), "file"),
                            Source("s2", "s3://bucket/key.nc", "file")], tmp_path / "work", stage,
                           lambda loc: "https://s3/presigned-" + loc[5:])
    assert refs == {"s0": Inline(b"x" * 10), "s1": Url("https://s3/big.bin?sig"),
                    "s2": Url("https://s3/presigned-bucket/key.nc")}
    assert staged == [big]


def test_s3_inputs_are_mapped_without_download():
    mapper = OscarPathMapper([{"class": "File", "location": "s3://data/a/b.nc", "basename": "b.nc"}], "/base",
                             "/pod/stage", separateDirs=False)
    assert mapper.mapper("s3://data/a/b.nc") == MapperEnt("s3://data/a/b.nc", "/pod/stage/b.nc", "File", True)
    assert split_s3("s3://data/a/b.nc") == ("data", "a/b.nc")
    with pytest.raises(ValueError, match="s3://"):
        split_s3("s3://only-bucket")


def test_a_batch_runs_each_command_apart_and_keeps_a_failed_preparation_to_its_command(tmp_path):
    from oscar_plugins.cwl.plan import BATCH_MEMBER, render_batch_script

    ok = Layout.new("ok", str(tmp_path / "pod"))
    bad = Layout.new("bad", str(tmp_path / "pod"))
    fails = Layout.new("fails", str(tmp_path / "pod"))
    scripts = [
        render_job_script(JobPlan(ok, ["/bin/sh", "-c", "echo one > out.txt"]), {}),
        render_job_script(JobPlan(bad, ["true"], sources=[Source("stg1", "/x", "file")]),
                          {"stg1": Url("file:///nonexistent/input")}),  # its input cannot be fetched
        render_job_script(JobPlan(fails, ["/bin/sh", "-c", "echo three > out.txt; exit 3"]), {}),
    ]
    result = tmp_path / "result"
    result.mkdir()
    batch = tmp_path / "batch.sh"
    batch.write_text(render_batch_script(scripts))
    env = {"PATH": os.environ["PATH"], "INPUT_FILE_PATH": str(batch), "TMP_OUTPUT_DIR": str(result), "JOB_UUID": "b"}
    proc = subprocess.run(["/bin/sh", "-c", RUNNER_SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr  # one command that could not run does not fail the others' job
    assert sorted(p.name for p in result.iterdir()) == ["result.tar"]  # one object for the whole batch
    unpack_batch(result)
    first, second, third = (result / BATCH_MEMBER.format(i) for i in range(3))
    assert sorted(p.name for p in first.iterdir()) == ["result.tar"]
    assert "out/out.txt" in _members(first / "result.tar")
    assert not (second / "result.tar").exists()
    assert (second / "runner-exit").read_text().strip() == "70"
    assert "could not download input stg1" in (second / "runner.log").read_text()
    dest, work = tmp_path / "third-out", tmp_path / "third-work"
    unpack_result(third / "result.tar", dest, work)
    assert (work / "meta" / "exit-code").read_text().strip() == "3"  # the command's own exit code is data
    assert (dest / "out.txt").read_text() == "three\n"
    assert not (tmp_path / "pod").exists() or not any((tmp_path / "pod").iterdir())  # each cleaned after itself
