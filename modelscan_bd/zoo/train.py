"""Train clean and backdoored image classifiers, deterministically, on CPU (or a GPU).

Inputs are [0, 1] pixels normalised with mean/std inside the loop (the saved
preprocessor config carries the same values). Poisoned samples are chosen once from
the seed; each batch is augmented (small random translations, flips where they keep
the label) first and poisoned after, so augmentation never moves a trigger away from
where the test-time trigger puts it.

``device="cuda"`` moves only the classifier's forward and backward passes to the GPU:
data, poisoning and attack parts stay on CPU (autograd crosses devices for attacks with
learnt parts), and the trained model comes back on CPU. GPU sums differ from CPU ones,
so a model trained there is a different (equally valid) zoo member; the ground truth
records where it was trained.
"""
from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import PreTrainedModel

from ..data import ImageDataset
from .architectures import build_model
from .attacks import Attack

# Epochs that keep one model under a minute on 2 idle CPU cores with 10k 32x32 images
# (resnet about 2 s an epoch, vit about 6 s).
DEFAULT_EPOCHS = {"resnet": 20, "vit": 8}
# Horizontal flips change the meaning of signs and digits, and of the synthetic gratings.
HFLIP_SAFE = frozenset({"cifar10"})
CROP_PAD = 2  # pixels of random translation (safe for every dataset, unlike flips)
SURROGATE_EPOCHS = 3  # the clean model the label-consistent attack perturbs against

Progress = Callable[[str], None]


@dataclass
class TrainResult:
    """A trained model (eval mode) and how it did on the dataset's test split."""

    model: PreTrainedModel
    clean_acc: float
    asr: float | None  # None for a clean model
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    poison_count: int = 0
    poison_rate: float = 0.0
    device: str = "cpu"  # where it was trained
    # Share of the attack's eligible test samples sent to its label *without* the trigger (None if clean).
    clean_hit_rate: float | None = None


def _normaliser(mean: Sequence[float], std: Sequence[float]) -> Callable[[Tensor], Tensor]:
    m = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)
    return lambda x: (x - m) / s


def pixel_logits(model: PreTrainedModel, mean: Sequence[float], std: Sequence[float]) -> Callable[[Tensor], Tensor]:
    """The model as a function of [0, 1] pixels to logits."""
    normalise = _normaliser(mean, std)
    return lambda x: model(pixel_values=normalise(x)).logits


@torch.no_grad()
def _predict(model: PreTrainedModel, x: Tensor, mean: Sequence[float], std: Sequence[float],
             transform: Callable[[Tensor], Tensor] | None = None, batch_size: int = 500) -> Tensor:
    model.eval()
    logits = pixel_logits(model, mean, std)
    preds = []
    for i in range(0, len(x), batch_size):
        batch = x[i:i + batch_size]
        preds.append(logits(transform(batch) if transform else batch).argmax(1))
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def evaluate(model: PreTrainedModel, x: Tensor, y: Tensor, mean: Sequence[float], std: Sequence[float]) -> float:
    """Accuracy on pixel-space images x (NCHW, [0, 1]) with labels y."""
    return float((_predict(model, x, mean, std) == y).float().mean()) if len(y) else float("nan")


def attack_success_rate(model: PreTrainedModel, attack: Attack, x: Tensor, y: Tensor,
                        mean: Sequence[float], std: Sequence[float], triggered: bool = True) -> float:
    """Share of the attack's eligible test samples that the trigger sends to its label. With
    ``triggered=False``, the share that goes there without the trigger: the clean hit rate, high when
    the model learnt a relabelling, not a trigger (a whole source class poisoned)."""
    keep = attack.asr_mask(y)
    if not keep.any():
        return float("nan")
    preds = _predict(model, x[keep], mean, std, transform=attack.apply_trigger if triggered else None)
    return float((preds == attack.asr_target(y[keep])).float().mean())


def choose_poison(attack: Attack, y: Tensor, poison_rate: float, generator: torch.Generator) -> Tensor:
    """Indices of the training samples to poison: ``poison_rate`` of the whole set, drawn
    among the attack's candidates (at most ``max_candidate_share`` of them when there are fewer)."""
    candidates = torch.nonzero(attack.poison_candidates(y)).flatten()
    count = min(round(poison_rate * len(y)), int(len(candidates) * attack.max_candidate_share))
    return candidates[torch.randperm(len(candidates), generator=generator)[:count]].sort().values


def _augment(x: Tensor, flip: bool, generator: torch.Generator) -> Tensor:
    """Random translation by up to CROP_PAD pixels (reflect-padded crop) and, where the
    dataset allows it, random horizontal flips."""
    n, _, height, width = x.shape
    padded = F.pad(x, (CROP_PAD,) * 4, mode="reflect")
    dy = torch.randint(0, 2 * CROP_PAD + 1, (n, 1), generator=generator)
    dx = torch.randint(0, 2 * CROP_PAD + 1, (n, 1), generator=generator)
    rows = (dy + torch.arange(height))[:, :, None]
    cols = (dx + torch.arange(width))[:, None, :]
    x = padded[torch.arange(n)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)  # indexing puts C last
    if flip:
        flipped = torch.rand(n, generator=generator) < 0.5
        x = torch.where(flipped.view(-1, 1, 1, 1), x.flip(3), x)
    return x


def _batch(x: Tensor, y: Tensor, poisoned: Tensor, attack: Attack | None,
           generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The batch as trained on: poisoned samples, the attack's extra samples made from
    (and replacing) some clean ones, the remaining clean samples."""
    n_poisoned = int(poisoned.sum())
    if attack is None or n_poisoned == 0:
        return x, y
    clean_x, clean_y = x[~poisoned], y[~poisoned]
    n_extra = min(round(attack.extra_ratio * n_poisoned), len(clean_y))  # the batch order is random
    parts = [attack.poison_batch(x[poisoned], y[poisoned], generator), (clean_x[n_extra:], clean_y[n_extra:])]
    if n_extra:
        parts.append(attack.extra_batch(clean_x[:n_extra], clean_y[:n_extra], generator))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _train_surrogate(arch: str, dataset: ImageDataset, seed: int, mean: Sequence[float],
                     std: Sequence[float], progress: Progress | None, device: str) -> Callable[[Tensor], Tensor]:
    result = train_classifier(arch, dataset, None, epochs=SURROGATE_EPOCHS, seed=seed + 1, mean=mean, std=std,
                              device=device, progress=(lambda msg: progress(f"surrogate {msg}")) if progress else None)
    return pixel_logits(result.model, mean, std)


def train_classifier(arch: str, dataset: ImageDataset, attack: Attack | None = None,
                     poison_rate: float | None = None, epochs: int | None = None, batch_size: int = 128,
                     lr: float = 2e-3, seed: int = 0, mean: Sequence[float] | None = None,
                     std: Sequence[float] | None = None, augment: bool = True,
                     progress: Progress | None = None, device: str = "cpu") -> TrainResult:
    """Train a ``build_model(arch)`` classifier on ``dataset``, backdoored by ``attack``.

    poison_rate: share of the whole training set to poison (default: the attack's own,
    0.1 for dirty-label attacks); clean-label and source-specific attacks draw from one
    class only, so they get at most that class. Adam with a cosine learning-rate decay.
    """
    start = time.perf_counter()
    channels, height, _ = dataset.image_shape
    mean = tuple(mean) if mean is not None else (0.5,) * channels
    std = tuple(std) if std is not None else (0.25,) * channels
    epochs = epochs if epochs is not None else DEFAULT_EPOCHS[arch]
    generator = torch.Generator().manual_seed(seed)
    x = dataset.to_tensor(dataset.train_x)
    y = torch.from_numpy(dataset.train_y)
    poisoned = torch.zeros(len(y), dtype=torch.bool)
    rate = 0.0
    if attack is not None:
        rate = poison_rate if poison_rate is not None else attack.default_poison_rate
        attack.fit(x, generator)
        chosen = choose_poison(attack, y, rate, generator)
        surrogate = (_train_surrogate(arch, dataset, seed, mean, std, progress, device)
                     if attack.needs_surrogate else None)
        x[chosen] = attack.prepare_poison(x[chosen], y[chosen], surrogate)
        poisoned[chosen] = True

    torch.manual_seed(seed)  # the model's initial weights
    model = build_model(arch, dataset.num_classes, dataset.classes, height, channels).to(device)
    groups: list[dict[str, Any]] = [{"params": model.parameters()}, *(attack.param_groups() if attack else [])]
    optimizer = torch.optim.Adam(groups, lr=lr)
    steps_per_epoch = -(-len(y) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    normalise = _normaliser(mean, std)
    flip = dataset.name in HFLIP_SAFE

    history = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(y), generator=generator)
        total_loss, correct, seen = 0.0, 0, 0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            bx = _augment(x[idx], flip, generator) if augment else x[idx]
            bx, by = _batch(bx, y[idx], poisoned[idx], attack, generator)
            by = by.to(device)
            logits = model(pixel_values=normalise(bx).to(device)).logits
            loss = F.cross_entropy(logits, by)
            extra = attack.regularizer(x[idx], generator) if attack is not None else None
            optimizer.zero_grad()
            (loss if extra is None else loss + extra.to(device)).backward()
            optimizer.step()
            schedule.step()
            total_loss += float(loss.detach()) * len(by)
            correct += int((logits.argmax(1) == by).sum())
            seen += len(by)
        history.append({"epoch": epoch + 1, "loss": total_loss / seen, "train_acc": correct / seen,
                        "seconds": time.perf_counter() - start})
        if progress:
            progress(f"{arch} epoch {epoch + 1}/{epochs}: loss {total_loss / seen:.3f}, "
                     f"train acc {correct / seen:.3f}")

    model.to("cpu").eval()
    test_x = dataset.to_tensor(dataset.test_x)
    test_y = torch.from_numpy(dataset.test_y)
    clean_acc = evaluate(model, test_x, test_y, mean, std)
    asr = hits = None
    if attack is not None:
        asr = attack_success_rate(model, attack, test_x, test_y, mean, std)
        hits = attack_success_rate(model, attack, test_x, test_y, mean, std, triggered=False)
    return TrainResult(model, clean_acc, asr, history, time.perf_counter() - start,
                       int(poisoned.sum()), rate, str(device), hits)


def _train_one(task: dict[str, Any]) -> tuple[TrainResult, Attack | None]:
    """One ``train_classifier`` run; the attack comes back too, since training fits parts of it."""
    return train_classifier(**task), task.get("attack")


def train_many(tasks: Sequence[dict[str, Any]], jobs: int = 1) -> Iterator[tuple[TrainResult, Attack | None]]:
    """``train_classifier(**task)`` for every task, yielding (result, fitted attack) in task order.

    jobs > 1 trains in that many worker processes with one torch thread each: small
    models on a few cores train faster side by side than one at a time with several
    threads. Every run is seeded by its own task, so the models do not depend on jobs
    (up to float summation order).
    """
    if jobs <= 1:
        yield from map(_train_one, tasks)
        return
    context = multiprocessing.get_context("spawn")  # fork after torch has threads is unsafe
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=torch.set_num_threads,
                             initargs=(1,)) as pool:
        yield from pool.map(_train_one, tasks)
