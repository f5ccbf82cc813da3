"""The PyTorch peer of bench/vs-torch.ts: the reference denoiser of docs/engines.md §4 in NCHW.

stem conv3x3 C->32; ResBlock(32->32) @H, avgpool2, ResBlock(32->64) @H/2, avgpool2, ResBlock(64->64) @H/4;
nearest x2, concat, ResBlock(128->64) @H/2; nearest x2, concat, ResBlock(96->32) @H; GroupNorm, SiLU, conv3x3 32->C.
ResBlock: GN(8, affine) -> SiLU -> conv3x3 -> + Linear(emb) -> GN -> SiLU -> conv3x3, plus a 1x1 skip when Cin != Cout.
sigma-embedding: sinusoidal 32 -> Linear 128 -> SiLU -> Linear 128. Loss: MSE(net((x0 + sigma*eps)/sqrt(sigma^2+1)), x0),
ln sigma ~ N(P_MEAN, P_STD^2). Adam lr 1e-4.

    /usr/bin/python3 bench/vs_torch.py --shapes 32x32x3x32,28x28x1x32 [--threads 2] [--warmup 5] [--steps 10]

Prints one JSON object on stdout: per shape, the median/min ms of one training step and the parameter count.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

P_MEAN, P_STD = -1.2, 1.2
GROUPS, EMB, FREQS = 8, 128, 16


class ResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.n1 = nn.GroupNorm(GROUPS, cin, eps=1e-5)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(EMB, cout)
        self.n2 = nn.GroupNorm(GROUPS, cout, eps=1e-5)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = None if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x, e):
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.emb(e)[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return h + (x if self.skip is None else self.skip(x))


class Denoiser(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.emb1 = nn.Linear(2 * FREQS, EMB)
        self.emb2 = nn.Linear(EMB, EMB)
        self.stem = nn.Conv2d(c, 32, 3, padding=1)
        self.r1 = ResBlock(32, 32)
        self.r2 = ResBlock(32, 64)
        self.r3 = ResBlock(64, 64)
        self.r4 = ResBlock(128, 64)
        self.r5 = ResBlock(96, 32)
        self.norm = nn.GroupNorm(GROUPS, 32, eps=1e-5)
        self.out = nn.Conv2d(32, c, 3, padding=1)
        self.register_buffer("freqs", torch.exp(torch.arange(FREQS, dtype=torch.float32) * (-math.log(10000) / FREQS)))

    def forward(self, x, sigma):
        angles = (torch.log(sigma) / 4)[:, None] * self.freqs[None, :]
        e = self.emb2(F.silu(self.emb1(torch.cat([torch.sin(angles), torch.cos(angles)], 1))))
        s1 = self.r1(self.stem(x), e)
        s2 = self.r2(F.avg_pool2d(s1, 2), e)
        h3 = self.r3(F.avg_pool2d(s2, 2), e)
        h4 = self.r4(torch.cat([F.interpolate(h3, scale_factor=2, mode="nearest"), s2], 1), e)
        h5 = self.r5(torch.cat([F.interpolate(h4, scale_factor=2, mode="nearest"), s1], 1), e)
        return self.out(F.silu(self.norm(h5)))


def bench(h, w, c, b, warmup, steps):
    torch.manual_seed(0)
    net = Denoiser(c)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x0 = torch.randn(b, c, h, w) * 0.5
    ms, cpu, losses = [], [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        c0 = time.process_time()
        sigma = torch.exp(torch.randn(b) * P_STD + P_MEAN)
        s4 = sigma[:, None, None, None]
        x = (x0 + s4 * torch.randn_like(x0)) / torch.sqrt(s4 * s4 + 1)
        loss = F.mse_loss(net(x, sigma), x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if i >= warmup:
            ms.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
    return {
        "shape": f"{h}x{w}x{c}",
        "batch": b,
        "parameters": sum(p.numel() for p in net.parameters()),
        "warmup": warmup,
        "steps": steps,
        "ms": [round(m, 2) for m in ms],
        "cpuMs": [round(c, 2) for c in cpu],
        "medianMs": round(statistics.median(ms), 1),
        "minMs": round(min(ms), 1),
        "lossFirst": losses[0],
        "lossLast": losses[-1],
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", default="32x32x3x32,28x28x1x32,16x16x1x8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    results = []
    for s in a.shapes.split(","):
        h, w, c, b = (int(v) for v in s.split("x"))
        results.append(bench(h, w, c, b, a.warmup, a.steps))
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}))


if __name__ == "__main__":
    main()
