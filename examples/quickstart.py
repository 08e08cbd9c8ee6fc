"""``make demo``: the smallest real end-to-end run on the embedded local cluster.

Deploys a service from an FDL dict, runs it once synchronously, then fans a batch of asynchronous jobs
out through the object store and collects their verified outputs. Run: ``python examples/quickstart.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = """\
python3 - "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR" <<'EOF'
import json, math, pathlib, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
values = [float(v) for v in src.read_text().split()]
n = len(values)
mean = sum(values) / n
std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
(out / (src.stem + ".json")).write_text(json.dumps({"n": n, "mean": mean, "std": std}))
print(f"{src.name}: n={n} mean={mean:.3f} std={std:.3f}")
EOF
"""

SERVICE = {
    "name": "demo-stats",
    "image": "python:3.11-slim",
    "script": SCRIPT,
    "cpu": "0.5",
    "memory": "256Mi",
    "input": [{"storage_provider": "minio.default", "path": "demo-stats/in"}],
    "output": [{"storage_provider": "minio.default", "path": "demo-stats/out"}],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Smallest real end-to-end run on an OSCAR cluster.")
    parser.add_argument("--cluster", help="profile name (default: the usual precedence, else the local cluster)")
    parser.add_argument("--jobs", type=int, default=20, help="number of async jobs")
    parser.add_argument("-o", "--output", default="demo-output", help="where outputs go")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    from oscar_plugins import Dispatcher, OscarClient, OscarError, service_from_dict

    try:
        client = OscarClient.connect(args.cluster)
        print(f"cluster: {client.profile.name} at {client.profile.endpoint} (OSCAR {client.info().get('version')})")
        svc = client.ensure_service(service_from_dict(SERVICE))
        print(f"service {svc.name} deployed")
        with tempfile.TemporaryDirectory() as tmp:
            inputs = []
            for i in range(args.jobs):
                path = Path(tmp) / f"series-{i:03d}.txt"
                path.write_text(" ".join(str((i + 1) * ((k * 7919) % 101) / 10) for k in range(1000)))
                inputs.append(path)
            t0 = time.perf_counter()
            result = client.run(svc.name, inputs[0])
            print(f"sync run ({time.perf_counter() - t0:.2f} s): {(result.data or b'').decode()}")
            out = Path(args.output)
            bar = tqdm(total=len(inputs), unit="job", desc="async jobs", file=sys.stderr)

            def progress(done: int, total: int) -> None:
                bar.update(done - bar.n)

            t0 = time.perf_counter()
            results = Dispatcher(client).map(svc.name, [[p] for p in inputs], out, overwrite=True,
                                             progress=progress)
            bar.close()
        failed = [r for r in results if not r.ok]
        print(f"{len(results) - len(failed)}/{len(results)} jobs succeeded in {time.perf_counter() - t0:.1f} s; "
              f"outputs under {out.resolve()}")
        for r in failed:
            print(f"failed: {r.error}", file=sys.stderr)
        return 1 if failed else 0
    except OscarError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
