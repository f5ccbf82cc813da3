"""The PyTorch peer of bench/distill.ts's MLP case: one SiD iteration of the 2-D MLP (docs/algorithm.md §12.3, §9.1).

Network: input [c_in*x (2), c_noise, sin/cos(2^(k/2) c_noise) k=0..7] -> 4 x Linear(128)+SiLU -> Linear(2), inside EDM's
preconditioning (sigma_data 0.5, c_noise = ln(sigma)/4). Teacher phi, fake score psi and generator G start from the
same weights. One iteration, as sid-ts runs it:
  fake step:      x_g = G(sigma_init z) without gradient, ln sigma ~ N(P_MEAN, P_STD^2), x = x_g + sigma n,
                  loss = mean lambda(sigma) |D_psi(x, sigma) - x_g|^2; Adam on psi (beta1 0).
  generator step: x_g = G(sigma_init z), t ~ U(0, tmax), sigma_t on EDM's Karras ladder, x_t = x_g + sigma_t n,
                  f_phi = D_phi(x_t), f_psi = D_psi(x_t) (differentiated through both networks' inputs, their weights
                  fixed), w = mean |x_g - f_phi| (no gradient),
                  loss = lsg * mean(((1 - alpha)(f_phi - f_psi)^2 + (f_phi - f_psi)(f_psi - x_g)) / w); Adam on G (beta1 0).
  EMA of G's weights.

    /usr/bin/python3 bench/vs_torch_mlp.py [--batch 512] [--threads 2] [--warmup 20] [--iterations 300]

Prints one JSON object on stdout: per-iteration wall and CPU milliseconds, their median and minimum, and the losses.
"""
import argparse
import copy
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SIGMA_DATA, SIGMA_MIN, SIGMA_MAX, RHO = 0.5, 0.002, 80.0, 7.0
P_MEAN, P_STD, SIGMA_INIT = -1.2, 1.2, 2.5
ALPHA, LSG, TMAX, LR = 1.2, 100.0, 800, 3e-4
FREQS, HIDDEN, DEPTH, DIM = 8, 128, 4, 2


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        widths = [DIM + 1 + 2 * FREQS] + [HIDDEN] * DEPTH + [DIM]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.register_buffer("freqs", torch.tensor([2 ** (k / 2) for k in range(FREQS)]))

    def denoise(self, x, sigma):
        s = sigma[:, None]
        c_skip = SIGMA_DATA**2 / (s * s + SIGMA_DATA**2)
        c_out = s * SIGMA_DATA / torch.sqrt(s * s + SIGMA_DATA**2)
        c_in = 1 / torch.sqrt(s * s + SIGMA_DATA**2)
        c_noise = (torch.log(sigma) / 4)[:, None]
        phase = c_noise * self.freqs[None, :]
        h = torch.cat([c_in * x, c_noise, torch.sin(phase), torch.cos(phase)], 1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < DEPTH:
                h = F.silu(h)
        return c_skip * x + c_out * h


def karras_sigma(t):
    a, b = SIGMA_MAX ** (1 / RHO), SIGMA_MIN ** (1 / RHO)
    return (a + t * (b - a)) ** RHO


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--iterations", type=int, default=300)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    teacher = Mlp()
    fake, gen = copy.deepcopy(teacher), copy.deepcopy(teacher)
    ema = copy.deepcopy(gen)
    for m in (teacher, ema):
        m.requires_grad_(False)
    opt_fake = torch.optim.Adam(fake.parameters(), lr=LR, betas=(0.0, 0.999), eps=1e-8)
    opt_gen = torch.optim.Adam(gen.parameters(), lr=LR, betas=(0.0, 0.999), eps=1e-8)
    b = a.batch
    sigma_init = torch.full((b,), SIGMA_INIT)
    ms, cpu, losses = [], [], []
    for i in range(a.warmup + a.iterations):
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            x_g = gen.denoise(SIGMA_INIT * torch.randn(b, DIM), sigma_init)
        sigma = torch.exp(torch.randn(b) * P_STD + P_MEAN)
        weight = (sigma**2 + SIGMA_DATA**2) / (sigma * SIGMA_DATA) ** 2
        x = x_g + sigma[:, None] * torch.randn_like(x_g)
        fake_loss = (weight[:, None] * (fake.denoise(x, sigma) - x_g) ** 2).mean()
        opt_fake.zero_grad(set_to_none=True)
        fake_loss.backward()
        opt_fake.step()

        fake.requires_grad_(False)
        x_g = gen.denoise(SIGMA_INIT * torch.randn(b, DIM), sigma_init)
        sigma_t = karras_sigma(torch.rand(b) * (TMAX / 1000))
        x_t = x_g + sigma_t[:, None] * torch.randn_like(x_g)
        f_phi = teacher.denoise(x_t, sigma_t)
        f_psi = fake.denoise(x_t, sigma_t)
        w = (x_g - f_phi).abs().mean(1, keepdim=True).detach()
        diff = f_phi - f_psi
        gen_loss = LSG * (((1 - ALPHA) * diff**2 + diff * (f_psi - x_g)) / w).mean()
        opt_gen.zero_grad(set_to_none=True)
        gen_loss.backward()
        opt_gen.step()
        fake.requires_grad_(True)

        with torch.no_grad():
            for pe, pg in zip(ema.parameters(), gen.parameters()):
                pe.lerp_(pg, 1 - 0.999)
        losses.append((fake_loss.item(), gen_loss.item()))
        if i >= a.warmup:
            ms.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch": b,
        "parameters": sum(q.numel() for q in gen.parameters()),
        "warmup": a.warmup,
        "iterations": a.iterations,
        "ms": [round(m, 3) for m in ms],
        "cpuMs": [round(c, 3) for c in cpu],
        "medianMs": round(statistics.median(ms), 2),
        "minMs": round(min(ms), 2),
        "lossFirst": losses[0],
        "lossLast": losses[-1],
    }))


if __name__ == "__main__":
    main()
