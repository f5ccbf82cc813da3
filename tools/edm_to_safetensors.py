#!/usr/bin/env python3
"""Convert an NVlabs/edm network pickle to a safetensors file that sid-ts reads as `--teacher edm:<file>`.

Needs the EDM code (github.com/NVlabs/edm: its `dnnlib` and `torch_utils` must be importable, e.g. run this from the
EDM checkout or put it on PYTHONPATH), PyTorch and the `safetensors` package. sid-ts itself does not need it.

    python tools/edm_to_safetensors.py edm-cifar10-32x32-uncond-vp.pkl cifar10-uncond.safetensors [--key ema]

The file holds the EDMPrecond state dict (names `model.*`, float32, PyTorch layouts) and, in the metadata key
`config`, the EDMPrecond constructor arguments as JSON (img_resolution, img_channels, label_dim, model_type and every
keyword of the inner model), which is what sid-ts needs to rebuild the network.
"""
import argparse
import inspect
import json
import math
import pickle

import torch
from safetensors.torch import save_file


def constructor_arguments(net):
    """EDM networks are built by `persistence.persistent_class`, which records the constructor's kwargs."""
    kwargs = dict(getattr(net, "init_kwargs", {}))
    if not kwargs:
        raise SystemExit("the network has no init_kwargs: is this an EDM (persistence) pickle?")
    model_type = kwargs.get("model_type") or type(net.model).__name__
    kwargs["model_type"] = model_type
    inner = dict(getattr(net.model, "init_kwargs", {}))
    for name in inspect.signature(type(net.model).__init__).parameters:
        if name in inner and name not in kwargs:
            kwargs[name] = inner[name]
    # JSON has no Infinity: leave out non-finite values (EDMPrecond's default sigma_max = inf is what sid-ts assumes).
    return {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in kwargs.items()
        if not (isinstance(v, float) and not math.isfinite(v))
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pickle")
    parser.add_argument("output")
    parser.add_argument("--key", default="ema", help="which network of the pickle (EDM: 'ema')")
    args = parser.parse_args()
    with open(args.pickle, "rb") as f:
        net = pickle.load(f)[args.key]
    tensors = {name: t.detach().to(torch.float32).contiguous().cpu() for name, t in net.state_dict().items()}
    metadata = {"format": "edm-safetensors-v1", "config": json.dumps(constructor_arguments(net)), "source": args.pickle}
    save_file(tensors, args.output, metadata=metadata)
    print(f"wrote {len(tensors)} tensors to {args.output}")


if __name__ == "__main__":
    main()
