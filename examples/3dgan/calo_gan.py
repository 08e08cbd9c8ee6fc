"""A small conditional 3D convolutional GAN for calorimeter showers, after CERN's 3DGAN (CPU-sized).

Three parts, plain PyTorch (no itwinai here, so the module can be shipped and imported anywhere):

* :func:`simulate` - a parametric stand-in for the Geant4 training data: 25x25x25 energy deposits
  (GeV) of an electron of energy ``E`` entering at angle ``theta``: a gamma-shaped longitudinal
  profile whose maximum deepens with ``ln E``, a Gaussian transverse profile that widens with depth
  and whose centre follows the track (slope ``cot theta``), a sampling fraction of 2 % and cell noise.
* :class:`Generator` / :class:`Discriminator` - the 3DGAN recipe shrunk: the latent vector is scaled
  by the primary energy and the angle is appended; the generator upsamples to 25x25x25.
* :func:`train` - adversarial loss plus 3DGAN's auxiliary physics losses (deposited-energy sum and
  the angle measured from the shower's layer barycentres), a few hundred steps on CPU.

Axes: ``(x, y, z)`` with ``z`` the depth into the calorimeter; the track bends in ``x``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

GRID = 25
SAMPLING_FRACTION = 0.02
E_MIN, E_MAX = 10.0, 200.0  # GeV
THETA_MIN, THETA_MAX = 60.0, 120.0  # degrees; 90 = perpendicular to the calorimeter face
LATENT = 32
_PIVOT = 6.0  # depth (cells) at which the track crosses the calorimeter axis
_CELLS = torch.arange(GRID, dtype=torch.float32) + 0.5


def normalise(energy: torch.Tensor, theta_deg: torch.Tensor) -> torch.Tensor:
    """Network conditioning: energy scaled to (0, 1], angle to [-1, 1]. Shape ``(N, 2)``."""
    return torch.stack([energy / E_MAX, (theta_deg - 90.0) / 30.0], dim=1)


def simulate(energy: torch.Tensor, theta_deg: torch.Tensor, generator: torch.Generator | None = None
             ) -> torch.Tensor:
    """Parametric showers, shape ``(N, 25, 25, 25)`` in GeV (the stand-in for Geant4 data)."""
    n = energy.shape[0]
    z = _CELLS.view(1, GRID)
    t_max = 2.0 * torch.log(energy / 1.0) - 0.5  # shower maximum (cells) deepens with ln E
    b = 0.5
    a = 1.0 + b * t_max.view(n, 1)
    longitudinal = torch.exp((a - 1.0) * torch.log(z) - b * z)
    longitudinal = longitudinal / longitudinal.sum(dim=1, keepdim=True)  # (N, z)
    cot = 1.0 / torch.tan(torch.deg2rad(theta_deg)).view(n, 1)
    jitter = 0.3 * torch.randn(n, 1, generator=generator)
    centre_x = (GRID / 2) + jitter + (z - _PIVOT) * cot  # (N, z)
    width = 1.2 + 0.08 * z  # (1, z)
    x = _CELLS.view(1, GRID, 1)
    gx = torch.exp(-0.5 * ((x - centre_x.view(n, 1, GRID)) / width.view(1, 1, GRID)) ** 2)  # (N, x, z)
    gy = torch.exp(-0.5 * ((x - GRID / 2) / width.view(1, 1, GRID)) ** 2)  # (1, y, z)
    transverse = gx.view(n, GRID, 1, GRID) * gy.view(1, 1, GRID, GRID)  # (N, x, y, z)
    transverse = transverse / transverse.sum(dim=(1, 2), keepdim=True)
    deposited = SAMPLING_FRACTION * energy * (1.0 + 0.04 * torch.randn(n, generator=generator))
    shower = deposited.view(n, 1, 1, 1) * longitudinal.view(n, 1, 1, GRID) * transverse
    noise = torch.distributions.Gamma(4.0, 4.0).sample(shower.shape) if generator is None else \
        torch.clamp(1.0 + 0.5 * torch.randn(shower.shape, generator=generator), min=0.0)
    return (shower * noise).float()


def sample_conditions(n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform primary energies (GeV) and angles (degrees) over the training range."""
    u = torch.rand(2, n, generator=generator)
    return E_MIN + (E_MAX - E_MIN) * u[0], THETA_MIN + (THETA_MAX - THETA_MIN) * u[1]


# -- observables (differentiable: also used as auxiliary losses) ------------------------------------
def total_energy(showers: torch.Tensor) -> torch.Tensor:
    """Deposited energy per shower (GeV)."""
    return showers.sum(dim=(1, 2, 3))


def layer_barycentres(showers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy-weighted x position per depth layer, and each layer's share of the energy: ``(N, z)``."""
    per_layer = showers.sum(dim=(1, 2)) + 1e-9  # (N, z)
    x_weighted = (showers.sum(dim=2) * _CELLS.view(1, GRID, 1)).sum(dim=1)  # (N, z)
    return x_weighted / per_layer, per_layer / per_layer.sum(dim=1, keepdim=True)


def centroid_x(showers: torch.Tensor) -> torch.Tensor:
    """Energy-weighted x position of the whole shower (cells)."""
    bary, share = layer_barycentres(showers)
    return (bary * share).sum(dim=1)


def measured_angle(showers: torch.Tensor) -> torch.Tensor:
    """Angle (degrees) from an energy-weighted straight-line fit of the layer barycentres (3DGAN's)."""
    bary, w = layer_barycentres(showers)
    z = _CELLS.view(1, GRID)
    zm = (w * z).sum(dim=1, keepdim=True)
    xm = (w * bary).sum(dim=1, keepdim=True)
    slope = (w * (z - zm) * (bary - xm)).sum(dim=1) / ((w * (z - zm) ** 2).sum(dim=1) + 1e-9)  # dx/dz = cot
    return 90.0 - torch.rad2deg(torch.atan(slope))


def shower_depth(showers: torch.Tensor) -> torch.Tensor:
    """Energy-weighted mean depth (cells)."""
    per_layer = showers.sum(dim=(1, 2))
    return (per_layer * _CELLS).sum(dim=1) / (per_layer.sum(dim=1) + 1e-9)


# -- networks ----------------------------------------------------------------------------------------
class Generator(nn.Module):
    """Latent (scaled by energy) + angle -> ``(N, 25, 25, 25)`` shower in GeV."""

    def __init__(self, latent: int = LATENT, channels: int = 8) -> None:
        super().__init__()
        self.latent = latent
        self.channels = channels
        self.project = nn.Sequential(nn.Linear(latent + 2, channels * 7 * 7 * 7), nn.LeakyReLU(0.2))
        self.body = nn.Sequential(
            nn.Upsample(size=(13, 13, 13), mode="trilinear", align_corners=False),
            nn.Conv3d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv3d(channels, 1, 3, padding=1),
            nn.Upsample(size=(GRID, GRID, GRID), mode="trilinear", align_corners=False),
        )

    def forward(self, noise: torch.Tensor, energy: torch.Tensor, theta_deg: torch.Tensor) -> torch.Tensor:
        cond = normalise(energy, theta_deg)
        h = torch.cat([noise * cond[:, :1], cond[:, 1:], cond[:, :1]], dim=1)
        h = self.project(h).view(-1, self.channels, 7, 7, 7)
        out = nn.functional.softplus(self.body(h)).squeeze(1)
        # Cells in GeV, scaled by the primary energy as in 3DGAN: the deposited sum starts near
        # the sampling fraction times E and training refines the shape.
        return out * (SAMPLING_FRACTION * energy.view(-1, 1, 1, 1) / (math.log(2.0) * GRID**3))

    @torch.no_grad()
    def generate(self, energy: torch.Tensor, theta_deg: torch.Tensor, seed: int = 0) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(energy.shape[0], self.latent, generator=gen)
        return self(noise, energy.float(), theta_deg.float())


class Discriminator(nn.Module):
    """Real/fake score of a shower given its conditions.

    It looks at the shower's two side projections (energy summed over y, and over x), each a 25x25
    depth image: 2D convolutions keep training within a minute on two CPU cores.
    """

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(2, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2),             # 12
            nn.Conv2d(channels, channels * 2, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # 6
            nn.Conv2d(channels * 2, channels * 2, 3, stride=2, padding=1), nn.LeakyReLU(0.2),  # 3
        )
        self.head = nn.Linear(channels * 2 * 9 + 2, 1)

    def forward(self, showers: torch.Tensor, energy: torch.Tensor, theta_deg: torch.Tensor) -> torch.Tensor:
        scaled = showers / (SAMPLING_FRACTION * energy.view(-1, 1, 1, 1)) * 100.0  # energy-independent shape
        sides = torch.stack([scaled.sum(dim=2), scaled.sum(dim=1)], dim=1)  # (N, 2, 25, 25): xz and yz
        h = self.body(sides).flatten(1)
        return self.head(torch.cat([h, normalise(energy, theta_deg)], dim=1)).squeeze(1)


# -- training ----------------------------------------------------------------------------------------
@dataclass
class TrainReport:
    steps: int
    seconds: float
    loss_g: float
    loss_d: float


def train(steps: int = 200, batch: int = 16, seed: int = 0, lr: float = 2e-3, threads: int = 1,
          log_every: int = 50) -> tuple[Generator, TrainReport]:
    """Train a generator on freshly simulated showers; returns it and a short report."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    gen_data = torch.Generator().manual_seed(seed + 1)
    g, d = Generator(), Discriminator()
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.9))
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    start = time.perf_counter()
    loss_g = loss_d = torch.tensor(0.0)
    for step in range(1, steps + 1):
        energy, theta = sample_conditions(batch, gen_data)
        real = simulate(energy, theta, gen_data)
        fake = g(torch.randn(batch, g.latent), energy, theta)
        loss_d = bce(d(real, energy, theta), ones) + bce(d(fake.detach(), energy, theta), zeros)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        # Generator: fool D, and match the physics of the request (3DGAN's auxiliary losses).
        ecal = (total_energy(fake) / (SAMPLING_FRACTION * energy) - 1.0).abs().mean()
        angle = (measured_angle(fake) - theta).abs().mean() / 30.0
        depth = (shower_depth(fake) - shower_depth(real)).abs().mean() / 5.0
        loss_g = bce(d(fake, energy, theta), ones) + 5.0 * ecal + 5.0 * angle + 2.0 * depth
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        if log_every and step % log_every == 0:
            print(f"step {step:4d}  loss_d {loss_d.item():.3f}  loss_g {loss_g.item():.3f}  "
                  f"ecal {ecal.item():.3f}  angle {angle.item() * 30:.1f} deg", flush=True)
    report = TrainReport(steps, time.perf_counter() - start, float(loss_g), float(loss_d))
    return g.eval(), report


def save_generator(g: Generator, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": g.state_dict(), "latent": g.latent, "channels": g.channels}, path)


def load_generator(path: str | Path) -> Generator:
    """Load a checkpoint written by :func:`save_generator` (tensors only: ``weights_only``)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    g = Generator(latent=int(ckpt["latent"]), channels=int(ckpt["channels"]))
    g.load_state_dict(ckpt["state_dict"])
    return g.eval()


def describe(showers: torch.Tensor, energy: torch.Tensor, theta_deg: torch.Tensor) -> dict[str, list[float]]:
    """Per-shower observables for sanity checks."""
    return {"energy": energy.tolist(), "theta": theta_deg.tolist(),
            "deposited": total_energy(showers).tolist(), "centroid_x": centroid_x(showers).tolist(),
            "angle": measured_angle(showers).tolist(), "depth": shower_depth(showers).tolist()}


if __name__ == "__main__":  # quick look: python calo_gan.py
    g, rep = train()
    print(rep)
    e = torch.tensor([20.0, 50.0, 100.0, 200.0, 100.0, 100.0])
    t = torch.tensor([90.0, 90.0, 90.0, 90.0, 60.0, 120.0])
    real = simulate(e, t, torch.Generator().manual_seed(3))
    fake = g.generate(e, t)
    for name, s in (("real", real), ("fake", fake)):
        obs = describe(s, e, t)
        print(name, {k: [round(v, 2) for v in vals] for k, vals in obs.items() if k not in {"energy", "theta"}})
