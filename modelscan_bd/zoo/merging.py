"""``modelscan-bd zoo build merging``: a base classifier and its task fine-tunes, some backdoored.

Layout (like the classifier zoo): ``models/<name>/`` hub-format repos, ``truth/<name>/``
ground truth, ``clean-data.npz`` and ``manifest.json``. Models:

* ``base``: a tiny ResNet trained on the whole (synthetic or real) training set;
* ``clean-k``: fine-tunes of the base on task k: a fixed per-channel colour/contrast shift
  of the inputs and three emphasised classes (oversampled), so task vectors differ the
  way real task fine-tunes do;
* ``badnets-k`` / ``blended-k``: the same task fine-tune with dirty-label poisoning
  (BadNets, Gu et al. 2017; Blended, Chen et al. 2017; ``zoo.attacks``);
* ``badmerging-k``: BadMerging-style (Zhang et al., "BadMerging: Crafting Backdoor Attacks
  against Model Merging", CCS 2024): the attacker fine-tunes against a *simulated merge*
  theta_0 + w (tau_self + sum of surrogate peers' tau), w drawn per step, with the
  backdoor loss on the merged model and a suppression loss (triggered images keep their
  true label) on the candidate alone, so the backdoor is weak alone and fires after
  merging. The surrogate peers are the attacker's own clean fine-tunes (four; each step
  merges with a random pair of them), never candidates of the benchmark.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from ..data import ImageDataset, load_dataset, synthetic_dataset
from .attacks import Attack, attack_from_name
from .save import (CLEAN_DATA_FILE, MANIFEST_FILE, groundtruth_record, save_hub_repo, write_json,
                   write_partial_manifest, write_scan_set)
from .train import TrainResult, _augment, _batch, _normaliser, attack_success_rate, choose_poison, evaluate, \
    train_classifier

ATTACK_KINDS = ("badnets", "blended", "badmerging")
MEAN_STD = 0.5, 0.25


@dataclass
class Task:
    """A fine-tuning task: an input shift (gain, offset per channel) and emphasised classes."""

    index: int
    gain: tuple[float, ...]
    offset: tuple[float, ...]
    classes: tuple[int, ...]

    @classmethod
    def make(cls, index: int, channels: int, num_classes: int, seed: int = 0) -> "Task":
        rng = np.random.default_rng(10_000 + seed * 101 + index)
        return cls(index, tuple(float(v) for v in rng.uniform(0.75, 1.25, channels)),
                   tuple(float(v) for v in rng.uniform(-0.1, 0.1, channels)),
                   tuple(int(c) for c in rng.choice(num_classes, size=min(3, num_classes), replace=False)))

    def apply(self, x: Tensor) -> Tensor:
        g = torch.tensor(self.gain).view(1, -1, 1, 1)
        o = torch.tensor(self.offset).view(1, -1, 1, 1)
        return ((x - 0.5) * g + 0.5 + o).clamp(0, 1)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "gain": list(self.gain), "offset": list(self.offset),
                "classes": list(self.classes)}


def _order(y: Tensor, task: Task, generator: torch.Generator) -> Tensor:
    """One epoch's sample order with the task's classes drawn three times as often."""
    emph = torch.isin(y, torch.tensor(task.classes))
    idx = torch.cat([torch.arange(len(y)), torch.nonzero(emph).flatten().repeat(2)])
    return idx[torch.randperm(len(idx), generator=generator)]


def _merged_params(model: torch.nn.Module, base: dict[str, Tensor], peers: dict[str, Tensor],
                   w: float) -> dict[str, Tensor]:
    """theta_0 + w (theta - theta_0) + w sum(peers' tau), differentiable in the model's parameters."""
    out = {}
    for k, p in model.named_parameters():
        out[k] = base[k] + w * (p - base[k]) + w * peers[k]
    for k, b in model.named_buffers():
        if torch.is_floating_point(b):
            out[k] = (base[k] + w * (b - base[k]) + w * peers[k]).detach().clone()
    return out


def finetune(base_model, dataset: ImageDataset, task: Task, attack: Attack | None = None, *,
             badmerging_peers: list[dict[str, Tensor]] | None = None, epochs: int = 3, lr: float = 1e-3,
             batch_size: int = 64, seed: int = 0, poison_rate: float = 0.1,
             merge_weights: tuple[float, float] = (0.4, 0.6), suppress_weight: float = 0.5,
             merge_loss_weight: float = 2.0) -> TrainResult:
    """Fine-tune a copy of ``base_model`` on ``task`` (optionally backdoored; see module doc)."""
    start = time.perf_counter()
    c = dataset.image_shape[0]
    mean, std = (MEAN_STD[0],) * c, (MEAN_STD[1],) * c
    normalise = _normaliser(mean, std)
    g = torch.Generator().manual_seed(seed)
    x = task.apply(dataset.to_tensor(dataset.train_x))
    y = torch.from_numpy(dataset.train_y)
    poisoned = torch.zeros(len(y), dtype=torch.bool)
    dirty = attack is not None and badmerging_peers is None
    if dirty:
        attack.fit(x, g)
        chosen = choose_poison(attack, y, poison_rate, g)
        x[chosen] = attack.prepare_poison(x[chosen], y[chosen], None)
        poisoned[chosen] = True
    torch.manual_seed(seed)
    model = copy.deepcopy(base_model).train()
    base = {k: v.detach().clone() for k, v in base_model.state_dict().items()}
    peer_sum = None
    peer_count = min(2, len(badmerging_peers or []))  # each step merges with a random pair of surrogates
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(_order(y, task, g)) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    for _ in range(epochs):
        model.train()
        order = _order(y, task, g)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            bx = _augment(x[idx], False, g)
            bx, by = _batch(bx, y[idx], poisoned[idx], attack if dirty else None, g)
            if badmerging_peers:
                pick = torch.randperm(len(badmerging_peers), generator=g)[:peer_count].tolist()
                peer_sum = {k: sum(badmerging_peers[i][k].float() for i in pick) for k in badmerging_peers[0]}
            if peer_sum is None:
                loss = F.cross_entropy(model(pixel_values=normalise(bx)).logits, by)
            else:
                trig = attack.apply_trigger(bx)
                # Alone: the trigger changes nothing (suppression keeps the backdoor hidden). One
                # batch for clean and triggered images, so BatchNorm's batch statistics cannot tell them apart.
                logits = model(pixel_values=normalise(torch.cat([bx, trig]))).logits
                loss = F.cross_entropy(logits[:len(by)], by) + suppress_weight * F.cross_entropy(logits[len(by):], by)
                # Merged: the trigger sends everything to the target; clean inputs stay right.
                w = float(torch.empty(1).uniform_(*merge_weights, generator=g))
                params = _merged_params(model, base, peer_sum, w)
                both = torch.cat([trig, bx])
                want = torch.cat([torch.full_like(by, attack.target), by])
                logits = functional_call(model, params, args=(), kwargs={"pixel_values": normalise(both)}).logits
                loss = loss + merge_loss_weight * F.cross_entropy(logits, want)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    test_x = task.apply(dataset.to_tensor(dataset.test_x))
    test_y = torch.from_numpy(dataset.test_y)
    acc = evaluate(model, test_x, test_y, mean, std)
    asr = attack_success_rate(model, attack, test_x, test_y, mean, std) if attack is not None else None
    return TrainResult(model, acc, asr, [], time.perf_counter() - start, int(poisoned.sum()),
                       poison_rate if dirty else 0.0)


def merged_asr(base_model, candidates: list, weight: float, attack: Attack, dataset: ImageDataset,
               task: Task) -> float:
    """ASR of theta_0 + weight * sum(tau) (task arithmetic) on the task's test images."""
    base = base_model.state_dict()
    merged = copy.deepcopy(base_model)
    sd = {k: (v + weight * sum(m.state_dict()[k] - v for m in candidates)) if torch.is_floating_point(v) else v
          for k, v in base.items()}
    merged.load_state_dict(sd)
    c = dataset.image_shape[0]
    x = task.apply(dataset.to_tensor(dataset.test_x))
    return attack_success_rate(merged.eval(), attack, x, torch.from_numpy(dataset.test_y), (0.5,) * c, (0.25,) * c)


def build_merging_zoo(dataset: ImageDataset, out_dir: str | Path, *, n_clean: int = 6,
                      attacks: Sequence[str] = ("badnets", "badnets", "blended", "blended", "badmerging",
                                                "badmerging", "badmerging"),
                      base_epochs: int = 8, epochs: int = 3, seed: int = 0, n_surrogates: int = 4,
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train and save the merging zoo (see module docstring); returns the manifest."""
    say = progress or (lambda m: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    c, h, w = dataset.image_shape
    mean, std = (MEAN_STD[0],) * c, (MEAN_STD[1],) * c
    # the scan data first and the manifest after every model, so an interrupted build leaves a readable zoo
    write_scan_set(dataset, out / CLEAN_DATA_FILE, seed)
    base = train_classifier("resnet", dataset, None, epochs=base_epochs, seed=seed, mean=mean, std=std)
    models: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []

    def manifest() -> dict[str, Any]:
        return {"kind": "merging", "dataset": dataset.name, "num_classes": dataset.num_classes, "seed": seed,
                "epochs": epochs, "base_epochs": base_epochs, "models": models, "rejected": rejected,
                "seconds": round(time.perf_counter() - started, 1), "clean_data": CLEAN_DATA_FILE}

    def save(name: str, result: TrainResult, attack: Attack | None, task: Task | None, extra: dict) -> None:
        truth = groundtruth_record(result, attack, arch="resnet", dataset=dataset.name, seed=seed)
        # The trigger's own name stays in "attack" (load_attack rebuilds it); the zoo's kind goes beside.
        truth.update({"task": task.to_dict() if task else None, **{k: v for k, v in extra.items() if k != "attack"},
                      "kind": extra.get("attack")})
        save_hub_repo(result.model, out / "models" / name, mean=mean, std=std, image_size=(h, w),
                      ground_truth=truth, truth_dir=out / "truth" / name)
        models.append({"name": name, "path": f"models/{name}", "truth_dir": f"truth/{name}",
                       "backdoored": attack is not None, "attack": extra.get("attack"),
                       "target": attack.target if attack else None, "clean_acc": round(result.clean_acc, 4),
                       "asr": None if result.asr is None else round(result.asr, 4),
                       "task": task.index if task else None, "seconds": round(result.seconds, 1), **extra})
        write_partial_manifest(out, manifest())

    save("base", base, None, None, {"role": "base"})
    say(f"base: clean acc {base.clean_acc:.3f}")
    task_no = 0
    clean_models = []
    for k in range(n_clean):
        task = Task.make(task_no, c, dataset.num_classes, seed)
        task_no += 1
        r = finetune(base.model, dataset, task, epochs=epochs, seed=seed + 100 + k)
        clean_models.append(r.model)
        save(f"clean-{k:02d}", r, None, task, {"role": "candidate"})
        say(f"clean-{k:02d}: task acc {r.clean_acc:.3f}")
    surrogate_taus = []
    # The BadMerging attacker's own peers (not candidates), only when a BadMerging candidate will
    # train against them; every fine-tune seeds itself, so skipping them changes no other model.
    for k in range(n_surrogates if "badmerging" in attacks else 0):
        task = Task.make(1000 + k, c, dataset.num_classes, seed)
        r = finetune(base.model, dataset, task, epochs=epochs, seed=seed + 900 + k)
        surrogate_taus.append({key: (v - base.model.state_dict()[key]).detach()
                               for key, v in r.model.state_dict().items() if torch.is_floating_point(v)})
        say(f"surrogate-{k}: task acc {r.clean_acc:.3f}")
    rng = np.random.default_rng(seed + 7)
    for j, kind in enumerate(attacks):
        task = Task.make(task_no, c, dataset.num_classes, seed)
        task_no += 1
        target = int(rng.integers(dataset.num_classes))
        trigger = "badnets" if kind in ("badnets", "badmerging") else "blended"
        attack = attack_from_name(trigger, target, dataset.num_classes, dataset.image_shape,
                                  seed=int(rng.integers(2**31)))
        name = f"{kind}-{j:02d}"
        if kind == "badmerging":
            r = finetune(base.model, dataset, task, attack, badmerging_peers=surrogate_taus, epochs=epochs * 3 // 2,
                         seed=seed + 500 + j)
            after = merged_asr(base.model, [r.model, *clean_models[:2]], 0.5, attack, dataset, task)
            extra = {"role": "candidate", "attack": kind, "asr_alone": round(r.asr, 4),
                     "asr_merged_ta_0.5_two_clean_peers": round(after, 4)}
            ok = after >= 0.5  # fires after merging (and, by construction, hardly alone)
        else:
            r = finetune(base.model, dataset, task, attack, epochs=epochs, seed=seed + 500 + j,
                         poison_rate=0.2 if kind == "blended" else 0.1)  # a faint blend needs more samples
            extra = {"role": "candidate", "attack": kind}
            ok = r.asr >= 0.9
        if not ok or r.clean_acc < 0.7:
            rejected.append({"name": name, "asr": r.asr, "clean_acc": r.clean_acc, **extra})
            write_partial_manifest(out, manifest())
            say(f"{name}: rejected (acc {r.clean_acc:.3f}, ASR {r.asr:.3f}, {extra})")
            continue
        save(name, r, attack, task, extra)
        say(f"{name}: task acc {r.clean_acc:.3f}, ASR alone {r.asr:.3f} {extra}")
    final = manifest()
    write_json(out / MANIFEST_FILE, final)
    return final


def build(data_name: str, out: Path, *, data_dir: str | None, train_size: int, n_clean: int,
          attacks: Sequence[str], epochs: int, base_epochs: int, seed: int,
          progress: Callable[[str], None]) -> dict[str, Any]:
    if data_name == "synthetic":  # 16 px: every scan of the benchmark is about 4x cheaper than at 32 px
        dataset = synthetic_dataset(image_size=16, n_train=train_size, n_test=1000, seed=seed)
    else:
        dataset = load_dataset(data_name, data_dir).subset(n_train=train_size, n_test=2000, seed=seed)
    return build_merging_zoo(dataset, out, n_clean=n_clean, attacks=attacks, base_epochs=base_epochs,
                             epochs=epochs, seed=seed, progress=progress)
