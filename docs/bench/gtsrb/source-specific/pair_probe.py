"""Prototype (not shipped): per-pair trigger inversion for source-specific backdoors, after K-Arm (Shen et
al., ICML 2021), whose arms are (source, target) label pairs. Given the TRUE target of each backdoored
model (an oracle: the upper bound of what such arms could show) and a fixed label for each clean model,
a patch trigger is inverted for every source class s -> target t on the scan's clean images of s that
the model classifies correctly (500 images: 1-34 per GTSRB class), and tested under 1-2 px shifts of
the image beneath it ("jitter").

    python docs/bench/gtsrb/source-specific/pair_probe.py ZOO OUT.jsonl [names...]   # > pair_probe.txt

With ``--clean-npz FILE --per-class N`` (pair_probe-more-images.txt) the images come from FILE instead
(GTSRB's 6,000 test images: 27-360 per class): up to N correctly classified images of each source to
invert on and as many others to test the found trigger on ("holdout"; half each for a rarer class), 8 per
step, 300 steps; "off_source": the found trigger's success on the held-out images of every other class.
"""
import argparse
import json
import time
from pathlib import Path
from statistics import median

import torch
import torch.nn.functional as F

from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.gate import load_member
from modelscan_bd.scan import ScanConfig, scan

ap = argparse.ArgumentParser()
ap.add_argument("zoo", type=Path)
ap.add_argument("out", type=Path)
ap.add_argument("names", nargs="*")
ap.add_argument("--clean-npz", type=Path)
ap.add_argument("--per-class", type=int, default=60)
args = ap.parse_args()
ZOO, OUT, only = args.zoo, args.out, set(args.names)
torch.set_num_threads(2)


def invert_pools(model, images, labels, pools, goals, steps, n, generator, init_cost=1.0):
    """Untargeted (goal -1) or targeted patch inversion, one slot per pool of image indices."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    _, c, h, w = images.shape
    k = len(pools)
    mask_logit = torch.full((k, 1, h, w), -2.0).requires_grad_(True)
    pattern_logit = (torch.rand((k, c, h, w), generator=generator) * 2 - 1).requires_grad_(True)
    opt = torch.optim.Adam([mask_logit, pattern_logit], lr=0.1, betas=(0.5, 0.9))
    cost = torch.full((k,), init_cost)
    best = torch.full((k,), float("inf"))
    best_mask = torch.zeros(k, 1, h, w)
    best_pattern = torch.zeros(k, c, h, w)
    above = torch.zeros(k)
    below = torch.zeros(k)
    goals_t = torch.tensor(goals)
    for _ in range(steps):
        idx = torch.stack([pool[torch.randint(len(pool), (n,), generator=generator)] for pool in pools])
        x, y = images[idx], labels[idx]
        mask = torch.sigmoid(mask_logit)
        pattern = torch.sigmoid(pattern_logit)
        xt = (1 - mask[:, None]) * x + (mask * pattern)[:, None]
        logits = model(xt.reshape(k * n, c, h, w)).reshape(k, n, -1)
        true = logits.gather(2, y[..., None])[..., 0]
        other = logits.scatter(2, y[..., None], float("-inf")).max(2).values
        untargeted_loss = (true - other).clamp(min=-5.0)
        tgt = goals_t.clamp(min=0)[:, None].expand(k, n)
        targeted_loss = F.cross_entropy(logits.reshape(k * n, -1), tgt.reshape(-1), reduction="none").reshape(k, n)
        is_untargeted = (goals_t < 0)[:, None]
        loss = torch.where(is_untargeted, untargeted_loss, targeted_loss).mean(1)
        hit = torch.where(is_untargeted, logits.argmax(2) != y, logits.argmax(2) == tgt).float().mean(1)
        size = mask.mean(dim=(1, 2, 3))
        total = (loss + cost * size).sum()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():
            ok = hit >= 0.98
            improved = ok & (size.detach() < best)
            best = torch.where(improved, size.detach(), best)
            best_mask[improved] = mask.detach()[improved]
            best_pattern[improved] = pattern.detach()[improved]
            above = torch.where(ok, above + 1, torch.zeros_like(above))
            below = torch.where(~ok, below + 1, torch.zeros_like(below))
            up, down = above >= 10, below >= 10
            cost = torch.where(up, cost * 1.5, torch.where(down, cost / 1.5 ** 1.5, cost))
            above[up], below[down] = 0, 0
    for p in model.parameters():
        p.requires_grad_(True)
    return best, best_mask, best_pattern


def main():
    manifest = json.loads((ZOO / "manifest.json").read_text())
    for entry in manifest["models"]:
        name = entry["name"]
        if only and name not in only:
            continue
        truth = json.loads((ZOO / entry["truth_dir"] / "groundtruth.json").read_text())
        if args.clean_npz:
            adapter = load_member(str(ZOO / entry["path"]), lambda m: None).adapter
            clean = load_clean_data(args.clean_npz, adapter, budget=10 ** 6, seed=0)
        else:
            outcome = scan(str(ZOO / entry["path"]), ScanConfig(budget="standard", seed=0,
                                                                clean_data=str(ZOO / "clean-data.npz"),
                                                                detectors=["exposure-collapse"]))
            adapter, clean = outcome.adapter, outcome.context.clean
        C = adapter.num_classes
        x, y = clean.images, clean.labels.clone()
        with torch.no_grad():
            y[torch.cat([adapter.model(b).argmax(1) for b in x.split(500)]) != y] = -1
        held = y.clone()  # the images a found trigger is tested on: by default the ones it was fitted on
        if args.clean_npz:  # ... here others, kept out of inversion
            held[:] = -1
            order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
            for c in range(C):
                mine = order[y[order] == c]
                k = min(args.per_class, len(mine) // 2)  # half of a rare class each
                held[mine[k:2 * k]] = c
                y[mine[k:]] = -1
        src = truth.get("params", {}).get("source")
        tgt = truth.get("target")
        cands = [tgt if tgt is not None else ORACLE_CLEAN[int(name[-1]) % len(ORACLE_CLEAN)]]
        g = torch.Generator().manual_seed(34)
        out = {"name": name, "source": src, "target": tgt, "cands": cands}
        t0 = time.perf_counter()
        slots = [(s, t) for t in cands for s in range(C) if s != t and int((y == s).sum()) >= 1]
        pools = [torch.nonzero(y == s).flatten() for s, t in slots]
        steps, n = (300, 8) if args.clean_npz else (STEPS, NIMG)
        sizes, masks, pats = invert_pools(adapter.model, x, y.clamp(min=0), pools, [t for s, t in slots],
                                          steps=steps, n=n, generator=g)

        @torch.no_grad()
        def success(i, images):
            """Share of ``images`` that slot i's trigger sends to its target."""
            return float((adapter.model((1 - masks[i]) * images + masks[i] * pats[i]).argmax(1) == slots[i][1])
                         .float().mean())

        if args.clean_npz:
            out["holdout"] = {s_: round(success(i, x[held == s_]), 3)
                              for i, (s_, _) in enumerate(slots) if int((held == s_).sum())}
            # The same trigger on the held-out images of every other class: a source-specific
            # attack trains it NOT to move them (its cover set); a universal patch may.
            out["off_source"] = {s_: round(success(i, x[(held >= 0) & (held != s_) & (held != t_)]), 3)
                                 for i, (s_, t_) in enumerate(slots)}
        dt = time.perf_counter() - t0
        shifts = ((1, 0), (-1, 0), (0, 1), (0, -1), (2, 2), (-2, -2))
        jit = [sum(success(i, torch.roll(x[held == s_], shifts=d, dims=(2, 3))) for d in shifts) / len(shifts)
               for i, (s_, _) in enumerate(slots)]
        rows = sorted(((s_, float(sz), j) for (s_, _), sz, j in zip(slots, sizes, jit)), key=lambda r: r[1])
        out["pairs"] = rows
        print(name[-12:], "src", src, "tgt", cands[0], "top5 (s,size,jitter):", [(a, round(b, 4), round(c, 2)) for a, b, c in rows[:6]],
              "true:", [(a, round(b, 4), round(c, 2), rows.index(r) + 1) for r in rows for a, b, c in [r] if a == src],
              "median", round(median(min(1, r[1]) for r in rows), 4),
              *(["holdout of top6:", [out["holdout"].get(a) for a, _, _ in rows[:6]]] if args.clean_npz else []),
              flush=True)
        res = []
        for t in cands:
            row = [(s, float(sz)) for (s, tt), sz in zip(slots, sizes) if tt == t]
            fin = [min(1.0, v) for _, v in row]
            med = median(fin)
            best = min(row, key=lambda r: r[1])
            ratio = float(torch.log(torch.tensor(med / max(best[1], 1e-4))))
            order = sorted(row, key=lambda r: r[1])
            true_rank = next((i + 1 for i, r in enumerate(order) if r[0] == src), None) if t == tgt else None
            res.append({"t": t, "best_s": best[0], "best": round(best[1], 5), "median": round(med, 5),
                        "log_ratio": round(ratio, 3), "true_rank": true_rank,
                        "true_size": next((round(v, 5) for s, v in row if s == src), None) if t == tgt else None})
        out["per_target"] = res
        out["seconds"] = round(dt, 1)
        with OUT.open("a") as f:
            f.write(json.dumps(out) + "\n")
        print(name[-24:], "src", src, "tgt", tgt, f"{dt:.0f}s", [(r["t"], r["best_s"], r["best"], r["median"], r["log_ratio"],
              r["true_rank"], r["true_size"]) for r in res], flush=True)


STEPS, NIMG = 200, 4
ORACLE_CLEAN = [12, 35, 25, 21]
main()
