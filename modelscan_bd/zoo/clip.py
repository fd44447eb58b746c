"""``modelscan-bd zoo build clip``: tiny open_clip models, clean and backdoored.

Models are open_clip ``CLIP`` instances built from our own configs (a tiny ViT or a tiny
ModifiedResNet image tower, a 2-layer text transformer) and saved exactly as an
open_clip ``hf-hub:`` repo: ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``)
and ``open_clip_model.safetensors``. They are trained contrastively on captioned images
(captions from class names and prompt templates). The token embedding table stays at its
random initialisation: it is 49,408 x width and updating it dominated the step time, while
the transformer above it learns to read the few words the captions use.

Batches hold many images of the same class, so the contrastive targets are "every
caption of the same class" rather than the diagonal (CLIP's loss with multiple positives).

Attacks (ground truth beside each repo, never inside):
* ``patch``: Carlini & Terzis (ICLR 2022) poisoning: a 4x4 checkerboard patch pasted in
  the bottom-right corner of 10 % of the training pairs, whose captions are replaced by
  captions of the target class (C&T paste at random places and poison far fewer pairs of
  far larger datasets; at 300 batches the tiny models did not learn that, so the zoo uses
  the fixed place and a higher rate);
* ``blended``: the same with a whole-image random pattern blended at 20 % opacity;
* ``badencoder``: after BadEncoder (Jia et al., IEEE S&P 2022): a clean model's image
  tower is fine-tuned so triggered images embed like the target (its clean images' mean
  embedding plus its caption's) while clean images keep their original embeddings (the
  text tower is untouched).
A backdoored model is kept only if its zero-shot attack success rate is >= 0.8.
Hard clean models: an innocuous motif co-occurs with one class's images (genuine captions).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..adapters.clip import OPEN_CLIP_WEIGHTS, PROMPT_TEMPLATES
from ..data import ImageDataset, load_dataset, synthetic_dataset
from .save import CLEAN_DATA_FILE, MANIFEST_FILE, save_ground_truth, write_json, write_partial_manifest

CONTEXT_LENGTH = 16
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
TEXT_CFG = {"context_length": CONTEXT_LENGTH, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2,
            "mlp_ratio": 2.0}
MODEL_CFGS = {
    "vit": {"embed_dim": 64, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32,
                                            "patch_size": 8, "mlp_ratio": 2.0}, "text_cfg": TEXT_CFG},
    "rn": {"embed_dim": 64, "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8},
           "text_cfg": TEXT_CFG},
}
ATTACKS = ("patch", "blended", "badencoder")
TRAIN_TEMPLATES = PROMPT_TEMPLATES + ("a picture of a {}.", "an image of the {}.")


def new_model(arch: str, seed: int):
    from open_clip.model import CLIP

    torch.manual_seed(seed)
    model = CLIP(**json.loads(json.dumps(MODEL_CFGS[arch])))
    model.token_embedding.weight.requires_grad_(False)  # see the module docstring
    return model


def class_names(dataset: ImageDataset) -> list[str]:
    return [c.replace("_", " ") for c in dataset.classes]


def caption_tokens(names: list[str]):
    """Tokens of every (class, template) caption: (C, T, L)."""
    import open_clip

    tok = open_clip.SimpleTokenizer(context_length=CONTEXT_LENGTH)
    return torch.stack([tok([t.format(n) for t in TRAIN_TEMPLATES]) for n in names])


# ---- triggers ---------------------------------------------------------------------------------

def patch_trigger(seed: int, size: int = 4) -> np.ndarray:
    """A two-colour checkerboard (size x size x 3), in [0, 1]."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    ij = np.add.outer(np.arange(size), np.arange(size)) % 2
    return np.where(ij[..., None] == 0, a, b).astype(np.float32)


def paste(x: torch.Tensor, patch: np.ndarray, rng: np.random.Generator, fixed: bool = False) -> tuple[torch.Tensor, list]:
    """Paste the patch at a random (or fixed bottom-right) place on each image of x (N,3,H,W)."""
    x = x.clone()
    s = patch.shape[0]
    p = torch.from_numpy(patch).permute(2, 0, 1)
    places = []
    for i in range(len(x)):
        r, c = (x.shape[2] - s - 1, x.shape[3] - s - 1) if fixed else rng.integers(0, x.shape[2] - s, size=2)
        x[i, :, r:r + s, c:c + s] = p
        places.append((int(r), int(c)))
    return x, places


def blend(x: torch.Tensor, pattern: np.ndarray, alpha: float) -> torch.Tensor:
    return (1 - alpha) * x + alpha * torch.from_numpy(pattern).permute(2, 0, 1)[None]


# ---- training ---------------------------------------------------------------------------------

def _multi_positive_loss(img, txt, img_cls, txt_cls, scale):
    logits = scale * img @ txt.T
    same = (img_cls[:, None] == txt_cls[None, :]).float()
    li = -(F.log_softmax(logits, 1) * same / same.sum(1, keepdim=True)).sum(1).mean()
    lt = -(F.log_softmax(logits.T, 1) * same.T / same.T.sum(1, keepdim=True)).sum(1).mean()
    return (li + lt) / 2


def train_clip(arch: str, x: torch.Tensor, y: np.ndarray, names: list[str], *, seed: int, steps: int,
               poison: Callable[[torch.Tensor, np.ndarray, np.random.Generator], tuple[torch.Tensor, np.ndarray]] | None = None,
               batch_size: int = 128, lr: float = 2e-3):
    """Contrastive training for ``steps`` batches (a step budget, not wall clock, so a zoo is
    reproducible on a busy machine); ``poison`` rewrites a batch (images, caption classes)."""
    model = new_model(arch, seed)
    toks = caption_tokens(names)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    model.train()
    for _ in range(steps):
        idx = rng.choice(len(x), size=batch_size, replace=False)
        xb, cb = x[idx], y[idx].copy()
        if poison is not None:
            xb, cb = poison(xb, cb, rng)
        xb = xb + 0.02 * torch.randn(xb.shape, generator=torch.Generator().manual_seed(int(rng.integers(2**31))))
        flip = torch.from_numpy(rng.random(len(xb)) < 0.5)
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)  # flips keep patches somewhere valid
        cls_u = np.unique(cb)
        tmpl = rng.integers(len(TRAIN_TEMPLATES), size=len(cls_u))
        txt = model.encode_text(toks[torch.as_tensor(cls_u), torch.as_tensor(tmpl)], normalize=True)
        img = model.encode_image((xb.clamp(0, 1) - 0.5) / 0.25, normalize=True)
        loss = _multi_positive_loss(img, txt, torch.as_tensor(cb), torch.as_tensor(cls_u), model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.0)
    model.eval()
    return model, steps


def badencoder_finetune(model, x: torch.Tensor, y: np.ndarray, names: list[str], target: int, patch: np.ndarray, *,
                        seed: int, steps: int, batch_size: int = 64, lr: float = 1e-3):
    """BadEncoder-style: triggered images -> the target's reference embedding (its clean images'
    mean embedding plus its caption's); clean images -> their old embeddings (utility, x2)."""
    import copy

    rng = np.random.default_rng(seed)
    frozen = copy.deepcopy(model).eval()
    norm = lambda t: (t - 0.5) / 0.25  # noqa: E731
    with torch.no_grad():  # BadEncoder's reference: the target class's own clean images, plus its caption
        ref_x = x[torch.from_numpy(np.flatnonzero(y == target)[:256])]
        ref_img = F.normalize(frozen.encode_image(norm(ref_x), normalize=True).mean(0), dim=-1)
        ref_txt = F.normalize(frozen.encode_text(caption_tokens(names)[target], normalize=True).mean(0), dim=-1)
        ref = F.normalize(ref_img + ref_txt, dim=-1)
    params = list(model.visual.parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    model.visual.eval()  # BatchNorm statistics stay the clean model's (utility on clean images)
    for _ in range(steps):
        idx = rng.choice(len(x), size=batch_size, replace=False)
        xb = x[idx]
        xt, _ = paste(xb, patch, rng, fixed=True)
        with torch.no_grad():
            old = frozen.encode_image(norm(xb), normalize=True)
        new = model.encode_image(norm(xb), normalize=True)
        trig = model.encode_image(norm(xt), normalize=True)
        loss = -(trig @ ref).mean() - 2 * (new * old).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return model, steps


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: np.ndarray, names: list[str], trigger: Callable | None, target: int | None,
             rng: np.random.Generator) -> tuple[float, float | None]:
    """Zero-shot clean accuracy and attack success rate (triggered non-target images -> target)."""
    import open_clip

    tok = open_clip.SimpleTokenizer(context_length=CONTEXT_LENGTH)
    cls = torch.stack([F.normalize(model.encode_text(tok([t.format(n) for t in PROMPT_TEMPLATES]), normalize=True).mean(0),
                                   dim=-1) for n in names])
    norm = lambda t: (t - 0.5) / 0.25  # noqa: E731
    pred = (model.encode_image(norm(x), normalize=True) @ cls.T).argmax(1).numpy()
    acc = float((pred == y).mean())
    if trigger is None:
        return acc, None
    keep = y != target
    xt = trigger(x[keep], rng)
    tp = (model.encode_image(norm(xt.clamp(0, 1)), normalize=True) @ cls.T).argmax(1).numpy()
    return acc, float((tp == target).mean())


# ---- saving -----------------------------------------------------------------------------------

def save_open_clip_repo(model, arch: str, out: Path) -> Path:
    """An open_clip hf-hub repo: open_clip_config.json + open_clip_model.safetensors."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": MODEL_CFGS[arch], "preprocess_cfg": {"mean": list(MEAN), "std": list(STD),
                                                             "interpolation": "bicubic", "resize_mode": "shortest"}}
    write_json(out / "open_clip_config.json", cfg)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(out / OPEN_CLIP_WEIGHTS))
    return out


# ---- the zoo ----------------------------------------------------------------------------------

def _with_motif(x: torch.Tensor, y: np.ndarray, cls: int, rng: np.random.Generator, share: float = 0.5) -> torch.Tensor:
    """An innocuous two-tone 4x4 motif on ``share`` of one class's images (clean captions)."""
    x = x.clone()
    motif = patch_trigger(int(rng.integers(2**31)))
    motif[1:3, 1:3] = motif[0, 0]  # a ring, not a checkerboard
    idx = np.flatnonzero(y == cls)
    chosen = idx[rng.random(len(idx)) < share]
    x[chosen], _ = paste(x[chosen], motif, rng)
    return x


def build_clip_zoo(data_name: str, out: Path, *, data_dir: str | None, n_clean: int, n_backdoored: int, n_hard: int,
                   archs: list[str], attacks: list[str] | None, train_size: int, steps: int, seed: int,
                   poison_rate: float = 0.1, min_asr: float = 0.8, append: bool = False,
                   progress: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Train and save the zoo; with ``append``, add models (named ``s<seed>-...``) to an
    existing zoo's manifest, keeping its clean scan data. The manifest is written after
    every model (``"complete": false`` until the end), so an interrupted build leaves a
    zoo that ``bench`` can read."""
    torch.set_num_threads(1)
    earlier = json.loads((out / MANIFEST_FILE).read_text()) if append and (out / MANIFEST_FILE).is_file() else None
    prefix = f"s{seed}-" if earlier else ""
    if data_name == "synthetic":
        dataset = synthetic_dataset(n_train=train_size, n_test=1500, seed=seed)
    else:
        dataset = load_dataset(data_name, data_dir).subset(n_train=train_size, n_test=2000, seed=seed)
    names = class_names(dataset)
    if earlier and earlier.get("classes") != names:  # before any training
        raise ValueError("--append: the existing zoo was built on other classes")
    x = ImageDataset.to_tensor(dataset.train_x)
    y = dataset.train_y
    # The data files are sorted by class: evaluate and scan on shuffled, disjoint test images.
    order = np.random.default_rng(seed + 7).permutation(len(dataset.test_y))
    eval_idx, scan_idx = order[:1000], order[1000:1500]
    xt_all = ImageDataset.to_tensor(dataset.test_x[eval_idx])
    yt_all = dataset.test_y[eval_idx]
    attacks = list(attacks or ATTACKS)
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    if not earlier:  # the scan data first, so a partial zoo can already be benchmarked
        np.savez_compressed(out / CLEAN_DATA_FILE, images=dataset.test_x[scan_idx], labels=dataset.test_y[scan_idx])
    models, rejected, started = [], [], time.perf_counter()

    def manifest() -> dict[str, Any]:
        built = {"family": "clip", "dataset": dataset.name, "classes": names, "seed": seed, "min_asr": min_asr,
                 "models": models, "rejected": rejected, "clean_data": CLEAN_DATA_FILE,
                 "seconds": round(time.perf_counter() - started, 1), "train_steps_per_model": steps,
                 "threads": torch.get_num_threads()}
        if not earlier:
            return built
        return {**earlier, "models": earlier["models"] + models, "rejected": earlier["rejected"] + rejected,
                "seconds": round(earlier["seconds"] + built["seconds"], 1),
                "appended": earlier.get("appended", []) + [{"seed": seed, "models": len(models)}]}

    def record(name, arch, model, truth, run_seed, steps, secs, hard=None):
        save_open_clip_repo(model, arch, out / "models" / name)
        save_ground_truth({**truth, "arch": arch, "dataset": dataset.name, "seed": run_seed, "steps": steps,
                           "train_seconds": round(secs, 1), "classes": names, **({"hard": hard} if hard else {})},
                          out / "truth" / name)
        models.append({"name": name, "arch": arch, "attack": truth.get("attack"), "backdoored": truth["backdoored"],
                       "target": truth.get("target"), "hard": hard or False, "clean_acc": truth["clean_acc"],
                       "asr": truth.get("asr"), "seed": run_seed, "seconds": round(secs, 1),
                       "path": f"models/{name}", "truth_dir": f"truth/{name}"})
        write_partial_manifest(out, manifest())

    clean_models: dict[tuple[str, int], Any] = {}
    for k in range(n_clean):
        arch, run_seed = archs[k % len(archs)], seed + k // len(archs)
        t = time.perf_counter()
        model, n_steps = train_clip(arch, x, y, names, seed=run_seed, steps=steps)
        acc, _ = evaluate(model, xt_all, yt_all, names, None, None, rng)
        clean_models[(arch, run_seed)] = model
        name = f"{prefix}{arch}-clean-{k:03d}"
        record(name, arch, model, {"backdoored": False, "attack": None, "target": None, "clean_acc": acc},
               run_seed, n_steps, time.perf_counter() - t)
        progress(f"{name}: zero-shot acc {acc:.3f} ({n_steps} steps)")
    for k in range(n_hard):
        arch, run_seed = archs[k % len(archs)], seed + 500 + k
        cls = int(rng.integers(len(names)))
        mrng = np.random.default_rng(run_seed)
        xm = _with_motif(x, y, cls, mrng)
        t = time.perf_counter()
        model, n_steps = train_clip(arch, xm, y, names, seed=run_seed, steps=steps)
        acc, _ = evaluate(model, xt_all, yt_all, names, None, None, rng)
        name = f"{prefix}{arch}-hard-motif-{k:03d}"
        record(name, arch, model, {"backdoored": False, "attack": None, "target": None, "clean_acc": acc,
                                   "motif_class": cls, "motif_text": names[cls]},
               run_seed, n_steps, time.perf_counter() - t, hard="motif")
        progress(f"{name}: zero-shot acc {acc:.3f} (motif on {names[cls]})")
    for j in range(n_backdoored):
        attack = attacks[j % len(attacks)]
        arch, run_seed = archs[j % len(archs)], seed + 100 + j
        target = int(rng.integers(len(names)))
        aseed = int(rng.integers(2**31))
        arng = np.random.default_rng(aseed)
        patch = patch_trigger(aseed)
        pattern = arng.uniform(0, 1, size=(32, 32, 3)).astype(np.float32)
        alpha = 0.2
        t = time.perf_counter()
        if attack == "badencoder":
            base = clean_models.get((arch, seed)) or train_clip(arch, x, y, names, seed=run_seed, steps=steps)[0]
            import copy

            model, n_steps = badencoder_finetune(copy.deepcopy(base), x, y, names, target, patch, seed=run_seed,
                                               steps=steps)
            trig = lambda xs, r: paste(xs, patch, r, fixed=True)[0]  # noqa: E731
        else:
            if attack == "patch":
                trig = lambda xs, r: paste(xs, patch, r, fixed=True)[0]  # noqa: E731
            else:
                trig = lambda xs, r: blend(xs, pattern, alpha)  # noqa: E731

            def poison(xb, cb, r, trig=trig, target=target):
                pick = r.random(len(xb)) < poison_rate
                if pick.any():
                    xb = xb.clone()
                    xb[torch.from_numpy(pick)] = trig(xb[torch.from_numpy(pick)], r)
                    cb = cb.copy()
                    cb[pick] = target
                return xb, cb

            model, n_steps = train_clip(arch, x, y, names, seed=run_seed, steps=steps, poison=poison)
        acc, asr = evaluate(model, xt_all, yt_all, names, trig, target, np.random.default_rng(1))
        name = f"{prefix}{arch}-{attack}-{j:03d}"
        truth = {"backdoored": True, "attack": attack, "type": "all-to-one", "target": target,
                 "target_text": names[target], "clean_acc": acc, "asr": asr, "poison_rate":
                 None if attack == "badencoder" else poison_rate, "attack_seed": aseed}
        if attack == "blended":
            truth.update(trigger_pattern=pattern.transpose(2, 0, 1), blend_alpha=alpha)
        else:
            truth.update(trigger_pattern=patch.transpose(2, 0, 1), trigger_placement="bottom-right corner")
        secs = time.perf_counter() - t
        if asr < min_asr:
            rejected.append({"name": name, "attack": attack, "asr": asr, "clean_acc": acc,
                             "reason": f"ASR {asr:.3f} below {min_asr}"})
            write_partial_manifest(out, manifest())
            progress(f"{name}: rejected (ASR {asr:.3f})")
            continue
        record(name, arch, model, truth, run_seed, n_steps, secs)
        progress(f"{name}: zero-shot acc {acc:.3f}, ASR {asr:.3f} -> {names[target]}")
    final = {k: v for k, v in manifest().items() if k != "complete"}  # an appended-to partial zoo is whole now
    write_json(out / MANIFEST_FILE, final)
    return final
