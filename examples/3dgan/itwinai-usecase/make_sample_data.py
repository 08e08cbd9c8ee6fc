"""Write a small synthetic inference dataset in the layout itwinai's 3DGAN use case reads, offline.

The use case's inference pipeline reads ``<dataset_location>/**/*.h5`` files holding ``ECAL`` (events x
51 x 51 x 25 calorimeter cells), ``energy`` (GeV) and ``theta`` (radians), and keeps the events whose
cells sum to more than 10 (``dataloader.ParticlesDataset``). Its own ``create_inference_sample.py``
writes the checkpoint but no data (the real data is downloaded from Google Drive). This writes
``<root>/exp_data/data/file_0.h5`` with ``--events`` seeded synthetic showers: per event a Gaussian
blob holding 10 % of the energy (150-500 GeV), leaning with the angle (60-120 degrees). Not physics;
enough for inference, where the generator reads only the energies and angles.

    python make_sample_data.py --root /path/to/use-cases/3dgan --events 8
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np

SHAPE = (51, 51, 25)


def make_sample(root: str | Path = ".", events: int = 8, seed: int = 0, folder: str = "exp_data") -> Path:
    """Write the H5 file and return its path."""
    rng = np.random.default_rng(seed)
    energy = rng.uniform(150.0, 500.0, events).astype(np.float32)  # GeV
    theta = rng.uniform(np.radians(60), np.radians(120), events).astype(np.float32)
    x, y, z = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in SHAPE), indexing="ij")
    ecal = np.empty((events, *SHAPE), dtype=np.float32)
    for i in range(events):
        cx = SHAPE[0] / 2 + (z - SHAPE[2] / 2) / np.tan(theta[i])  # the track leans with the angle
        blob = np.exp(-((x - cx) ** 2 + (y - SHAPE[1] / 2) ** 2) / 8.0 - (z - 8.0) ** 2 / 40.0)
        ecal[i] = 0.1 * energy[i] * blob / blob.sum() * (1.0 + 0.1 * rng.standard_normal(SHAPE))
    ecal[ecal < 1e-4] = 0.0
    path = Path(root) / folder / "data" / "file_0.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        fh.create_dataset("ECAL", data=ecal, compression="gzip")
        fh.create_dataset("energy", data=energy)
        fh.create_dataset("theta", data=theta)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=".", help="the use case's folder (default: the working directory)")
    parser.add_argument("--events", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(make_sample(args.root, args.events, args.seed))
