"""The wheel's layout: adapters live under the project's namespace, no generic top-level names."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_layout(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("oscar_plugins-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"oscar_plugins"}
    for module in ("oscar_plugins/cwl/__init__.py", "oscar_plugins/airflow/__init__.py",
                   "oscar_plugins/itwinai/__init__.py", "oscar_plugins/local/__init__.py",
                   "oscar_plugins/py.typed", "oscar_plugins/wrapper.sh"):
        assert module in names, module
    assert not any(n.startswith(("tests/", "cwl/", "airflow_provider/", "itwinai_ext/")) for n in names)
    # Installed from the wheel into a fresh target, the namespaces import.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    code = "import oscar_plugins.cwl, oscar_plugins.airflow, oscar_plugins.itwinai, oscar_plugins; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(target)}, capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_editable_install_namespaces():
    import oscar_plugins.airflow
    import oscar_plugins.cwl
    import oscar_plugins.itwinai

    assert Path(oscar_plugins.cwl.__file__).parent == ROOT / "cwl"
    assert Path(oscar_plugins.airflow.__file__).parent == ROOT / "airflow_provider"
    assert Path(oscar_plugins.itwinai.__file__).parent == ROOT / "itwinai_ext"
