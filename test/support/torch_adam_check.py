"""Test helper (test/TrainingState.test.ts): loads a SiD training-state-*.pt the way SiD's training loop does and takes
one torch Adam step on each network from the loaded state.

    torch_adam_check.py STATE.pt OUT.safetensors BETA1

For G and fake_score: fresh modules of the same names and shapes (zeros) receive the weights through the official
loop's copy_params_and_buffers(require_all=True); a torch.optim.Adam built over their parameters with other
hyper-parameters loads the file's optimizer state (which restores lr, betas and eps), β₁ is then set to BETA1, each
parameter gets a gradient from torch.randn (seed 0) and the optimizer steps once. OUT holds `<net>.grad.<name>` and
`<net>.after.<name>` for every parameter and buffer (buffers: zero gradient, unchanged), and the metadata `groups`:
lr, betas, eps and step of each optimizer after the step.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import sid_training_state as sts  # noqa: E402


def copy_params_and_buffers(src_module, dst_module, require_all=False):
    # mingyuanzhou/SiD torch_utils/misc.py, as the training loop calls it on --resume.
    src = dict(list(src_module.named_parameters()) + list(src_module.named_buffers()))
    for name, tensor in list(dst_module.named_parameters()) + list(dst_module.named_buffers()):
        assert (name in src) or (not require_all), name
        if name in src:
            with torch.no_grad():
                tensor.copy_(src[name])


def main(pt, out, beta1):
    data = torch.load(pt, map_location="cpu")
    gen = torch.Generator().manual_seed(0)
    tensors = {}
    groups = {}
    for net, opt_key in (("G", "g_optimizer_state"), ("fake_score", "fake_score_optimizer_state")):
        src = data[net]
        fresh = sts.module_from_names({n: torch.zeros_like(p) for n, p in src.named_parameters()},
                                      {n: torch.zeros_like(b) for n, b in src.named_buffers()})
        copy_params_and_buffers(src, fresh, require_all=True)
        opt = torch.optim.Adam(fresh.parameters(), lr=0.5, betas=(0.5, 0.5), eps=0.5)
        opt.load_state_dict(data[opt_key])
        for g in opt.param_groups:
            g["betas"] = (beta1, g["betas"][1])
        for name, p in fresh.named_parameters():
            p.grad = torch.randn(p.shape, generator=gen)
            tensors[f"{net}.grad.{name}"] = p.grad.clone()
        opt.step()
        for name, p in fresh.named_parameters():
            tensors[f"{net}.after.{name}"] = p.detach().clone()
        for name, b in fresh.named_buffers():
            tensors[f"{net}.grad.{name}"] = torch.zeros_like(b)
            tensors[f"{net}.after.{name}"] = b.clone()
        g = opt.param_groups[0]
        steps = sorted({int(float(s["step"])) for s in opt.state.values()})
        groups[net] = {"lr": g["lr"], "betas": list(g["betas"]), "eps": g["eps"], "steps": steps}
    sts.write_safetensors(out, tensors, {"groups": json.dumps(groups), "torch": torch.__version__})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
