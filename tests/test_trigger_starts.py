"""Trigger recovery's second start (docs/bench/trigger-starts/PROTOCOL.md): it runs at
standard when the first start finds nothing, never at fast, and keeps per (label, shape) the
smaller trigger of the two starts; and its sweep of the labels it did not invert
(docs/bench/trigger-sweep/PLAN.md)."""
import torch

from modelscan_bd.cleandata import from_arrays
from modelscan_bd.detectors.base import ScanContext
from modelscan_bd.detectors.trigger import TriggerRecoveryDetector

from tiny_gratings import make_data, train_poisoned


def _scan(adapter, budget: str, seed: int = 0, results: dict | None = None):
    x, y = make_data(160, torch.Generator().manual_seed(100))
    results = results or {"exposure-collapse": {"label": 3, "runner_up": 6}, "mmbd": {"target": 3}}
    context = ScanContext(seed=seed, budget=budget, clean=from_arrays(x, y, adapter, seed=seed), results=results)
    (finding,) = TriggerRecoveryDetector().run(adapter, context)
    return finding, context.results[TriggerRecoveryDetector.id]


def _patch(x):
    x = x.clone()
    x[:, :, -4:, -4:] = torch.tensor([1.0, 0.0, 1.0]).view(1, 3, 1, 1)
    return x


def test_second_start_only_when_the_first_finds_nothing():
    clean = train_poisoned(0, None, epochs=2)
    finding, result = _scan(clean, "standard")
    ev = finding.evidence
    assert finding.status == "passed" and ev["starts"] == 2 and result["starts"] == 2
    kept = [t["size"] if t["reached"] else 1.0 for t in ev["triggers"]]
    assert len(kept) == len(ev["first_start_sizes"])
    assert all(k <= f + 1e-5 for k, f in zip(kept, ev["first_start_sizes"]))
    assert any(k < f - 1e-5 for k, f in zip(kept, ev["first_start_sizes"]))  # the second start mattered somewhere
    again, _ = _scan(clean, "standard")
    assert again.evidence == ev  # same model, config and seed: same triggers

    fast, _ = _scan(clean, "fast")
    assert fast.evidence["starts"] == 1 and "first_start_sizes" not in fast.evidence

    backdoored = train_poisoned(0, _patch, target=3, epochs=3)
    found, result = _scan(backdoored, "standard")
    assert found.status == "failed" and result["label"] == 3 and found.evidence["starts"] == 1


def test_sweep_promotes_a_target_the_candidates_missed():
    """Exposure and MM-BD name the wrong labels (as on missed label-consistent models): the
    sweep inverts the other labels, NC's index singles out the patch target, and it is scored."""
    backdoored = train_poisoned(0, _patch, target=3, epochs=3)
    wrong = {"exposure-collapse": {"label": 1, "runner_up": 6}, "mmbd": {"target": 1}}
    found, result = _scan(backdoored, "standard", results=dict(wrong))
    sweep = found.evidence["sweep"]
    inverted = set(found.evidence["candidates"] + found.evidence["references"])
    assert 3 not in inverted  # the seed's references miss the target too, so only the sweep can find it
    assert sorted(sweep["labels"]) == sorted(set(range(10)) - inverted)
    assert len(sweep["sizes"]) == 10 and sweep["smallest"] == 3 and sweep["anomaly_index"] > 2
    assert sweep["promoted"] == 3 and result["promoted"] == 3
    assert found.status == "failed" and result["label"] == 3 and found.target_labels == [3]
    assert found.evidence["best"]["shape"] == "patch"
    assert sweep["log_ratio"] >= 0.92 and sweep["holdout_success"] >= 0.8  # its trigger counts by itself

    # A swept trigger short of the detector's bar changes nothing (the scan computes what it did without the sweep).
    strict = {**wrong, "calibration": {"trigger": {"log_ratio_threshold": 10.0}}}
    unmoved, result = _scan(backdoored, "standard", results=strict)
    assert unmoved.evidence["sweep"]["smallest"] == 3 and unmoved.evidence["sweep"]["promoted"] is None
    assert result["promoted"] is None and result["label"] != 3 and unmoved.status == "passed"

    fast, result = _scan(backdoored, "fast", results=dict(wrong))
    assert "sweep" not in fast.evidence and result["promoted"] is None and result["label"] != 3
