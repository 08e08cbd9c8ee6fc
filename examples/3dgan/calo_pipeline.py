"""itwinai components of the 3DGAN example: train, request conditions, generate showers, save and plot.

The inference pipeline mirrors interTwin's 3DGAN one (getter -> predictor -> saver); in
``config.yaml`` its predictor is wrapped in ``oscar_plugins.itwinai.OscarOffload`` so it runs on an
OSCAR service. This module and ``calo_gan.py`` are shipped to the service with the checkpoint, so
the service only needs an image with itwinai and PyTorch.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import calo_gan
import torch
from itwinai.components import BaseComponent, DataGetter, Saver, monitor_exec


class GANTrainer(BaseComponent):
    """Train the generator on simulated showers for a few hundred steps and save a checkpoint."""

    def __init__(self, checkpoint: str, steps: int = 200, batch: int = 16, seed: int = 0, threads: int = 1,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        self.save_parameters(**self.locals2params(locals()))
        self.checkpoint, self.steps, self.batch, self.seed, self.threads = checkpoint, steps, batch, seed, threads

    @monitor_exec
    def execute(self) -> str:
        generator, report = calo_gan.train(steps=self.steps, batch=self.batch, seed=self.seed, threads=self.threads)
        calo_gan.save_generator(generator, Path(self.checkpoint))
        print(f"trained {report.steps} steps in {report.seconds:.1f} s; checkpoint {self.checkpoint}")
        return self.checkpoint


class ConditionsGetter(DataGetter):
    """The showers to generate: every (energy, angle) pair of the two lists, ``per_condition`` times."""

    def __init__(self, energies: list[float], angles: list[float], per_condition: int = 4,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        self.save_parameters(**self.locals2params(locals()))
        self.energies, self.angles, self.per_condition = energies, angles, per_condition

    @monitor_exec
    def execute(self) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [(e, a) for e in self.energies for a in self.angles for _ in range(self.per_condition)]
        energy = torch.tensor([p[0] for p in pairs], dtype=torch.float32)
        theta = torch.tensor([p[1] for p in pairs], dtype=torch.float32)
        return energy, theta


class ShowerGenerator(BaseComponent):
    """The predictor: load the generator and produce one shower per requested (energy, angle)."""

    def __init__(self, checkpoint: str, seed: int = 0, name: str | None = None) -> None:
        super().__init__(name=name)
        self.save_parameters(**self.locals2params(locals()))
        self.checkpoint, self.seed = checkpoint, seed

    @monitor_exec
    def execute(self, energy: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        generator = calo_gan.load_generator(self.checkpoint)
        showers = generator.generate(energy, theta, seed=self.seed)
        return showers, energy, theta


class ShowerSaver(Saver):
    """Write the showers (``showers.npz``), sanity checks (``summary.json``) and PNG plots."""

    def __init__(self, output_dir: str, name: str | None = None) -> None:
        super().__init__(name=name)
        self.save_parameters(**self.locals2params(locals()))
        self.output_dir = output_dir

    @monitor_exec
    def execute(self, showers: torch.Tensor, energy: torch.Tensor, theta: torch.Tensor) -> dict[str, Any]:
        import numpy as np

        out = Path(self.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out / "showers.npz", showers=showers.numpy(), energy=energy.numpy(), theta=theta.numpy())
        summary = sanity_checks(showers, energy, theta)
        (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        plot(showers, energy, theta, out)
        for check in summary["checks"]:
            print(f"{'PASS' if check['ok'] else 'FAIL'}  {check['what']}: {check['detail']}")
        return summary


def _means(values: torch.Tensor, keys: torch.Tensor) -> dict[float, float]:
    return {float(k): float(values[keys == k].mean()) for k in torch.unique(keys)}


def sanity_checks(showers: torch.Tensor, energy: torch.Tensor, theta: torch.Tensor) -> dict[str, Any]:
    """Physics sanity of generated showers: energy response, centroid and measured angle vs the request."""
    deposited = _means(calo_gan.total_energy(showers), energy)
    centroid = _means(calo_gan.centroid_x(showers), theta)
    angle = _means(calo_gan.measured_angle(showers), theta)
    e_keys, t_keys = sorted(deposited), sorted(centroid)
    checks = [
        {"what": "deposited energy grows with primary energy",
         "ok": all(deposited[a] < deposited[b] for a, b in itertools.pairwise(e_keys)),
         "detail": ", ".join(f"{e:g} GeV -> {deposited[e]:.2f} GeV" for e in e_keys)},
        {"what": "shower centroid moves with the angle (x falls as theta grows)",
         "ok": all(centroid[a] > centroid[b] for a, b in itertools.pairwise(t_keys)),
         "detail": ", ".join(f"{t:g} deg -> x={centroid[t]:.2f}" for t in t_keys)},
        {"what": "angle measured from layer barycentres follows the request (within 10 deg)",
         "ok": all(abs(angle[t] - t) < 10.0 for t in t_keys),
         "detail": ", ".join(f"{t:g} -> {angle[t]:.1f}" for t in t_keys)},
    ]
    return {"n_showers": int(showers.shape[0]), "shape": list(showers.shape[1:]),
            "mean_deposited_by_energy": deposited, "mean_centroid_x_by_angle": centroid,
            "mean_measured_angle_by_angle": angle, "checks": checks, "all_ok": all(c["ok"] for c in checks)}


def plot(showers: torch.Tensor, energy: torch.Tensor, theta: torch.Tensor, out: Path) -> list[Path]:
    """Longitudinal and transverse energy profiles, deposited-vs-primary energy, and one shower's slice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = range(calo_gan.GRID)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for e in torch.unique(energy):
        sel = showers[energy == e]
        axes[0].plot(cells, sel.sum(dim=(1, 2)).mean(dim=0), label=f"{e:g} GeV")
    axes[0].set(title="Longitudinal profile", xlabel="depth z (cell)", ylabel="mean energy per layer (GeV)")
    axes[0].legend()
    for t in torch.unique(theta):
        sel = showers[theta == t]
        axes[1].plot(cells, sel.sum(dim=(2, 3)).mean(dim=0), label=f"{t:g} deg")
    axes[1].set(title="Transverse profile (x)", xlabel="x (cell)", ylabel="mean energy per slice (GeV)")
    axes[1].legend()
    axes[2].scatter(energy, calo_gan.total_energy(showers), s=10, c=theta, cmap="coolwarm")
    axes[2].set(title="Deposited vs primary energy", xlabel="primary energy (GeV)", ylabel="deposited (GeV)")
    fig.tight_layout()
    profiles = out / "energy_profiles.png"
    fig.savefig(profiles, dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, t in zip(axes, (float(theta.min()), 90.0, float(theta.max())), strict=True):
        idx = int(torch.argmin((theta - t).abs() + (energy != energy.max()).float() * 1e3))  # highest energy
        image = ax.imshow(showers[idx, :, calo_gan.GRID // 2, :].T, origin="lower", cmap="inferno")
        ax.set(title=f"{float(energy[idx]):g} GeV, {float(theta[idx]):g} deg: slice y=12",
               xlabel="x (cell)", ylabel="depth z (cell)")
        fig.colorbar(image, ax=ax, label="GeV")
    fig.tight_layout()
    slices = out / "shower_slices.png"
    fig.savefig(slices, dpi=90)
    plt.close(fig)
    return [profiles, slices]
