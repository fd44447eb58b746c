"""Step 3 of PLAN.md: a copy of a ViT zoo whose manifest keeps its clean models and the first kept
model of each attack, so that `bench --budget standard` scans only those (a ViT scan at `standard`
costs about 3x a ResNet's). Models, truth and clean data are symlinked, not copied.

    python subset.py /work/zoo/cifar10-vit-s2400 /work/zoo/cifar10-vit-s2400-std
"""
import json
import sys
from pathlib import Path

src, dst = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
manifest = json.loads((src / "manifest.json").read_text())
seen, kept = set(), []
for entry in manifest["models"]:
    attack = entry.get("attack")
    if attack is None or attack not in seen:
        kept.append(entry)
        seen.add(attack)
dst.mkdir(parents=True, exist_ok=False)
for name in ("models", "truth", "clean-data.npz"):
    (dst / name).symlink_to(src / name)
manifest["models"] = kept
manifest["subset_of"] = {"zoo": str(src), "rule": "clean models and the first kept model of each attack"}
(dst / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
print(f"{len(kept)} models: " + ", ".join(e["name"] for e in kept))
