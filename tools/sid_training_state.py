#!/usr/bin/env python3
"""Convert a sid-ts training state to SiD's PyTorch resume file and back (docs/training-state.md).

    python3 tools/sid_training_state.py to-pt STATE.safetensors OUT          # OUT: a directory or training-state-KKKKKK.pt
    python3 tools/sid_training_state.py to-sid-ts training-state-KKKKKK.pt OUT.safetensors [--template STATE.safetensors]
    python3 tools/sid_training_state.py show FILE                               # what a file holds, and the sid_train.py flags

`to-pt` writes what SiD's training loop (mingyuanzhou/SiD, training/sid_training_loop.py) loads with
`sid_train.py --resume training-state-KKKKKK.pt`: a torch.save'd dict with

  fake_score, G, G_ema                  torch.nn.Module trees whose named_parameters()/named_buffers() carry EDMPrecond's
                                        names (model.enc.32x32_conv.weight, ...): the loop reads them only through
                                        misc.copy_params_and_buffers(src_module=..., dst_module=..., require_all=True);
  fake_score_optimizer_state,           torch.optim.Adam state_dicts: state[i] = {step, exp_avg, exp_avg_sq} with i the
  g_optimizer_state                     index of the parameter in module.parameters() order; param_groups carry lr,
                                        betas, eps (load_state_dict restores them, whatever the command line says);

plus the same weights as plain state dicts (G_state_dict, G_ema_state_dict, fake_score_state_dict) and the sid-ts
metadata (sid_ts), which the official loop ignores. The modules are plain torch.nn.Module objects (no class of the
SiD repository is pickled), so the file loads wherever torch does. The loop takes cur_nimg from the file name
(KKKKKK thousands of images), so the name must stay `training-state-<kimg>.pt`.

`to-sid-ts` reads such a file back — one written by `to-pt`, or one SiD's loop dumped (loading that one needs the SiD
repository on PYTHONPATH: its modules are pickled with their classes) — into a sid-ts training state that
`sid state import` makes into a run directory. Without sid-ts metadata in the .pt, `--template` gives the state the run
left sid-ts with (settings, teacher, random streams).

Only Python 3, torch and the standard library: the safetensors format is read and written here by hand.
"""

import argparse
import collections
import json
import os
import re
import struct
import sys

import torch

FORMAT = "sid-ts-training-state-v1"
NETWORKS = (("G.", "G"), ("G_ema.", "G_ema"), ("fake_score.", "fake_score"))
OPTIMIZERS = (("g_optimizer.", "g_optimizer_state", "g_optimizer_step"),
              ("fake_score_optimizer.", "fake_score_optimizer_state", "fake_score_optimizer_step"))
STATE_NAME = re.compile(r"training-state-(\d+)\.pt")


class StateError(Exception):
    """A file that is not what it should be; the message says what and what to do."""


# ---------------------------------------------------------------------------------------------------------------------
# safetensors, by hand: u64 LE header length, JSON header (padded with spaces to 8 bytes), raw little-endian data.

def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise StateError(f"{path}: too short to be a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise StateError(f"{path}: the header length {n} runs past the end of the file")
    header = json.loads(data[8:8 + n].decode("utf-8"), object_pairs_hook=collections.OrderedDict)
    metadata = dict(header.pop("__metadata__", {}) or {})
    body = memoryview(data)[8 + n:]
    tensors = collections.OrderedDict()
    for name, entry in header.items():
        if entry["dtype"] != "F32":
            raise StateError(f"{path}: tensor {name} is {entry['dtype']}; a training state holds F32 only")
        begin, end = entry["data_offsets"]
        shape = list(entry["shape"])
        count = 1
        for s in shape:
            count *= s
        if end - begin != 4 * count or end > len(body):
            raise StateError(f"{path}: tensor {name} has {end - begin} bytes for shape {shape}")
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=torch.float32) if count > 0 else torch.zeros(0)
        tensors[name] = t.reshape(shape).clone()
    return tensors, metadata


def write_safetensors(path, tensors, metadata):
    header = collections.OrderedDict()
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    offset = 0
    blobs = []
    for name, t in tensors.items():
        t = t.detach().to(torch.float32).contiguous().cpu()
        blob = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    atomic_write(path, lambda f: [f.write(struct.pack("<Q", len(text))), f.write(text)] + [f.write(b) for b in blobs])


def atomic_write(path, write):
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ---------------------------------------------------------------------------------------------------------------------
# Generic modules: a tree of plain torch.nn.Module built from dotted names.

def module_from_names(params, buffers):
    """A torch.nn.Module whose named_parameters() are `params` and named_buffers() are `buffers`, in that order."""
    root = torch.nn.Module()

    def owner(name):
        node = root
        parts = name.split(".")
        for part in parts[:-1]:
            child = node._modules.get(part)
            if child is None:
                child = torch.nn.Module()
                node.add_module(part, child)
            node = child
        return node, parts[-1]

    for name, t in params.items():
        node, leaf = owner(name)
        node.register_parameter(leaf, torch.nn.Parameter(t.clone(), requires_grad=True))
    for name, t in buffers.items():
        node, leaf = owner(name)
        node.register_buffer(leaf, t.clone())
    return root


def tensors_of(module):
    params = collections.OrderedDict((n, p.detach().cpu().to(torch.float32)) for n, p in module.named_parameters())
    buffers = collections.OrderedDict((n, b.detach().cpu().to(torch.float32)) for n, b in module.named_buffers())
    return params, buffers


# ---------------------------------------------------------------------------------------------------------------------

def check_format(path, metadata):
    if metadata.get("format") != FORMAT:
        raise StateError(f"{path}: its format is {metadata.get('format')!r}, not {FORMAT}; write it with `sid state export`")


def group(tensors, prefix):
    return collections.OrderedDict((n[len(prefix):], t) for n, t in tensors.items() if n.startswith(prefix))


def adam_state(exp_avg, exp_avg_sq, names, step, lr, betas, eps):
    state = {}
    for i, name in enumerate(names):
        state[i] = {"step": torch.tensor(float(step)), "exp_avg": exp_avg[name].clone(), "exp_avg_sq": exp_avg_sq[name].clone()}
    group_ = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": 0, "amsgrad": False, "maximize": False,
              "foreach": None, "capturable": False, "differentiable": False, "fused": None, "params": list(range(len(names)))}
    return {"state": state, "param_groups": [group_]}


def to_pt(src, out, overwrite=False):
    """sid-ts training state → SiD's training-state-<kimg>.pt; returns the path written."""
    tensors, metadata = read_safetensors(src)
    check_format(src, metadata)
    images_seen = int(metadata["images_seen"])
    kimg = images_seen // 1000
    if os.path.isdir(out):
        out = os.path.join(out, f"training-state-{kimg:06d}.pt")
    if not STATE_NAME.fullmatch(os.path.basename(out)):
        raise StateError(f"{out}: SiD's --resume needs a file named training-state-<kimg>.pt (here training-state-{kimg:06d}.pt)")
    if os.path.exists(out) and not overwrite:
        raise StateError(f"{out}: the file exists; pass --overwrite to replace it")
    if images_seen % 1000 != 0:
        print(f"note: {images_seen} images seen; SiD's loop resumes at cur_nimg = {kimg * 1000} (from the file name), "
              "which only shifts its EMA ramp-up and tick schedule", file=sys.stderr)
    params = json.loads(metadata["parameters"])
    buffers = json.loads(metadata["buffers"])
    settings = json.loads(metadata["settings"])
    out_dict = {}
    for prefix, key in NETWORKS:
        g = group(tensors, prefix)
        missing = [n for n in params + buffers if n not in g]
        if missing:
            raise StateError(f"{src}: {prefix}* lacks {', '.join(missing[:10])}")
        module = module_from_names(collections.OrderedDict((n, g[n]) for n in params),
                                   collections.OrderedDict((n, g[n]) for n in buffers))
        out_dict[key] = module
        out_dict[key + "_state_dict"] = module.state_dict()
    # Adam's state is indexed by position in module.parameters(): the tree's order, which for EDM networks is
    # EDMPrecond's own (state_dict order without the buffers) and is checked against the file's `parameters` list.
    order = [n for n, _ in out_dict["G"].named_parameters()]
    if metadata.get("layout") == "edm" and order != params:
        raise StateError(f"{src}: its `parameters` are not in EDMPrecond's parameters() order")
    lrs = {"g_optimizer.": float(settings["glr"]), "fake_score_optimizer.": float(settings["lr"])}
    beta1s = {"g_optimizer.": float(settings.get("g_beta1", 0)), "fake_score_optimizer.": float(settings.get("beta1", 0))}
    for prefix, key, step_key in OPTIMIZERS:
        m = group(tensors, prefix + "exp_avg.")
        v = group(tensors, prefix + "exp_avg_sq.")
        missing = [n for n in params if n not in m or n not in v]
        if missing:
            raise StateError(f"{src}: {prefix}exp_avg(_sq).* lacks {', '.join(missing[:10])}")
        out_dict[key] = adam_state(m, v, order, int(metadata[step_key]), lrs[prefix],
                                   (beta1s[prefix], float(settings["beta2"])), float(settings["eps"]))
    out_dict["sid_ts"] = {"format": FORMAT, "metadata": dict(metadata)}
    atomic_write(out, lambda f: torch.save(out_dict, f))
    return out


def load_pt(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:  # torch < 1.13 has no weights_only
        return torch.load(path, map_location="cpu")


def to_sid_ts(src, out, template=None, images_seen=None, overwrite=False):
    """SiD's training-state-*.pt → sid-ts training state; returns the path written."""
    if os.path.exists(out) and not overwrite:
        raise StateError(f"{out}: the file exists; pass --overwrite to replace it")
    data = load_pt(src)
    for key in ("G", "G_ema", "fake_score", "g_optimizer_state", "fake_score_optimizer_state"):
        if key not in data:
            raise StateError(f"{src}: no {key!r}; it is not a SiD training state (training-state-*.pt)")
    if "sid_ts" in data:
        metadata = dict(data["sid_ts"]["metadata"])
    elif template is not None:
        _, metadata = read_safetensors(template)
        check_format(template, metadata)
    else:
        raise StateError(f"{src}: it carries no sid-ts metadata; give --template, the state the run left sid-ts with")
    params = json.loads(metadata["parameters"])
    buffers = json.loads(metadata["buffers"])
    tensors = collections.OrderedDict()
    order = [n for n, _ in data["G"].named_parameters()]
    for prefix, key in NETWORKS:
        p, b = tensors_of(data[key])
        if sorted(p) != sorted(params) or sorted(b) != sorted(buffers):
            raise StateError(f"{src}: {key}'s parameters are not the network's ({len(p)} parameters, {len(params)} expected); "
                             "it was trained with another architecture")
        for n in params:
            tensors[prefix + n] = p[n]
        if key == "G":
            shapes = {n: t.shape for n, t in p.items()}
        for n in buffers:
            tensors[prefix + n] = b[n]
    steps = {}
    for prefix, key, step_key in OPTIMIZERS:
        sd = data[key]
        if len(sd["param_groups"]) != 1 or list(sd["param_groups"][0]["params"]) != list(range(len(params))):
            raise StateError(f"{src}: {key} does not hold one parameter group over the network's {len(params)} parameters")
        found = set()
        for i, name in enumerate(order):
            s = sd["state"].get(i)
            shape = shapes[name]
            if s is None:
                s = {"step": torch.tensor(0.0), "exp_avg": torch.zeros(shape), "exp_avg_sq": torch.zeros(shape)}
            found.add(int(float(s["step"])))
            tensors[prefix + "exp_avg." + name] = s["exp_avg"].detach().cpu().to(torch.float32)
            tensors[prefix + "exp_avg_sq." + name] = s["exp_avg_sq"].detach().cpu().to(torch.float32)
        if len(found) > 1:
            raise StateError(f"{src}: {key} has parameters at different step counts {sorted(found)}")
        steps[step_key] = found.pop() if found else 0
    metadata = dict(metadata)
    old_fake = int(metadata["fake_score_optimizer_step"])
    if steps["fake_score_optimizer_step"] != old_fake or steps["g_optimizer_step"] != int(metadata["g_optimizer_step"]):
        # Trained further in PyTorch: one fake-score update per iteration; cur_nimg from the file name.
        match = STATE_NAME.fullmatch(os.path.basename(src))
        if images_seen is None and match is None:
            raise StateError(f"{src}: give --images-seen (the name is not training-state-<kimg>.pt)")
        metadata["images_seen"] = str(images_seen if images_seen is not None else int(match.group(1)) * 1000)
        metadata["step"] = str(int(metadata["step"]) + steps["fake_score_optimizer_step"] - old_fake)
    elif images_seen is not None:
        metadata["images_seen"] = str(images_seen)
    metadata["g_optimizer_step"] = str(steps["g_optimizer_step"])
    metadata["fake_score_optimizer_step"] = str(steps["fake_score_optimizer_step"])
    write_safetensors(out, tensors, metadata)
    return out


def sid_train_flags(metadata):
    """The sid_train.py options that match a state's settings (the rest — data, duration, metrics — are the user's)."""
    s = json.loads(metadata["settings"])
    flags = [f"--alpha {s['alpha']}", f"--tmax {s['tmax']}", f"--init_sigma {metadata['sigma_init']}", f"--lr {s['lr']}",
             f"--glr {s['glr']}", f"--g_beta1 {s['g_beta1']}", f"--ls {s['ls']}", f"--lsg {s['lsg']}", f"--batch {s['batch']}",
             f"--ema {float(s['ema_halflife_kimg']) / 1000}", "--fp16 0"]
    if s.get("dropout") is not None:
        flags.append(f"--dropout {s['dropout']}")
    config = json.loads(metadata.get("edm_config", "{}"))
    flags.append(f"--augment {s.get('augment', 0) or 0}")
    if config.get("augment_dim", 0) and not s.get("augment"):
        flags.append("# note: the network has augment_dim 9, which sid_train.py builds only with --augment > 0")
    if config.get("model_type") == "DhariwalUNet":
        flags.append("--arch adm")
    elif config.get("model_type") == "SongUNet":
        flags.append("--arch " + ("ncsnpp" if config.get("embedding_type") == "fourier" else "ddpmpp"))
    if config:
        flags += [f"--cbase {config['model_channels']}", "--cres " + ",".join(str(c) for c in config["channel_mult"])]
    return flags


def show(path):
    if path.endswith(".pt"):
        data = load_pt(path)
        metadata = data.get("sid_ts", {}).get("metadata", {})
        print(f"{path}: keys {sorted(data)}")
        for key in ("g_optimizer_state", "fake_score_optimizer_state"):
            sd = data[key]
            steps = sorted({int(float(s['step'])) for s in sd['state'].values()})
            print(f"  {key}: {len(sd['param_groups'][0]['params'])} parameters, steps {steps}, "
                  f"lr {sd['param_groups'][0]['lr']}, betas {sd['param_groups'][0]['betas']}, eps {sd['param_groups'][0]['eps']}")
    else:
        tensors, metadata = read_safetensors(path)
        check_format(path, metadata)
        print(f"{path}: {len(tensors)} tensors, {metadata['layout']} layout, step {metadata['step']}, "
              f"{metadata['images_seen']} images seen")
    if metadata.get("layout") == "edm":
        print("  sid_train.py flags: " + " ".join(sid_train_flags(metadata)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("to-pt", help="sid-ts training state → SiD's training-state-<kimg>.pt")
    a.add_argument("state")
    a.add_argument("out", help="a directory (the file is named training-state-<kimg>.pt) or the .pt path")
    a.add_argument("--overwrite", action="store_true")
    b = sub.add_parser("to-sid-ts", help="SiD's training-state-*.pt → sid-ts training state")
    b.add_argument("pt")
    b.add_argument("out")
    b.add_argument("--template", help="the sid-ts state the run left with (needed when the .pt has no sid-ts metadata)")
    b.add_argument("--images-seen", type=int, help="images seen (default: from the file name, <kimg> × 1000)")
    b.add_argument("--overwrite", action="store_true")
    c = sub.add_parser("show", help="what a state holds, and the matching sid_train.py flags")
    c.add_argument("file")
    args = parser.parse_args(argv)
    try:
        if args.command == "to-pt":
            out = to_pt(args.state, args.out, args.overwrite)
            _, metadata = read_safetensors(args.state)
            print(f"wrote {out}")
            if metadata.get("layout") == "edm":
                print("resume it with: python sid_train.py --resume " + out + " --edm_model <teacher.pkl> --data <dataset> "
                      + " ".join(sid_train_flags(metadata)))
            else:
                print("note: a sid-ts network (not EDM); SiD's training loop trains EDM networks only", file=sys.stderr)
        elif args.command == "to-sid-ts":
            print(f"wrote {to_sid_ts(args.pt, args.out, args.template, args.images_seen, args.overwrite)}")
        else:
            show(args.file)
    except StateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
