"""Merge methods and mergekit config parsing, on hand-made tensors and configs."""
from __future__ import annotations

import pytest
import torch

from modelscan_bd.errors import UsageError
from modelscan_bd.gate import robust_z, weight_space
from modelscan_bd.gate_config import UnsupportedConfigError, emit_config, explicit_config, parse_config
from modelscan_bd.merging import (MergeSpec, check_compatible, elect_sign_mask, magnitude_trim, merge_state_dicts,
                                  random_drop, scaled, task_vector)


def _sd(*values):
    return {"w": torch.tensor(values, dtype=torch.float32), "n": torch.tensor(3)}


def test_task_arithmetic_adds_weighted_task_vectors_and_keeps_integer_buffers():
    base, a, b = _sd(1, 1, 1), _sd(2, 1, 0), _sd(1, 3, 1)
    out = merge_state_dicts(base, [a, b], MergeSpec("task_arithmetic", [0.5, 1.0], [1, 1]))
    assert torch.allclose(out["w"], torch.tensor([1.5, 3.0, 0.5]))
    assert out["n"].dtype == torch.int64 and int(out["n"]) == 3
    lam = merge_state_dicts(base, [a, b], MergeSpec("task_arithmetic", [0.5, 1.0], [1, 1], lam=2.0))
    assert torch.allclose(lam["w"], torch.tensor([2.0, 5.0, 0.0]))


def test_magnitude_trim_keeps_exactly_the_largest_entries():
    tau = torch.tensor([0.1, -3.0, 0.5, 2.0, -0.2])
    assert torch.equal(magnitude_trim(tau, 0.4), torch.tensor([0.0, -3.0, 0.0, 2.0, 0.0]))
    assert torch.equal(magnitude_trim(tau, 1.0), tau)


def test_ties_sign_election_and_disjoint_mean():
    # Entry 0: +2, +1, -1 -> sum +2, elected +, mean of agreeing (2, 1) = 1.5.
    # Entry 1: -3, +1, +1 -> sum -1, elected -, only -3 agrees.
    # Entry 2: trimmed away in the third model (density 2/3 keeps its two largest).
    base = {"w": torch.zeros(3)}
    models = [{"w": torch.tensor([2.0, -3.0, 0.0])}, {"w": torch.tensor([1.0, 1.0, 0.0])},
              {"w": torch.tensor([-1.0, 1.0, 0.1])}]
    deltas = torch.stack([m["w"] for m in models])
    assert torch.equal(elect_sign_mask(deltas)[:, 0], torch.tensor([True, True, False]))
    out = merge_state_dicts(base, models, MergeSpec("ties", [1, 1, 1], [1.0, 1.0, 2 / 3]))
    assert torch.allclose(out["w"], torch.tensor([1.5, -3.0, 0.0]))
    # Without normalisation TIES sums the agreeing entries.
    raw = merge_state_dicts(base, models, MergeSpec("ties", [1, 1, 1], [1.0, 1.0, 2 / 3], normalize=False))
    assert torch.allclose(raw["w"], torch.tensor([3.0, -3.0, 0.0]))


def test_dare_drops_and_rescales_deterministically():
    tau = torch.ones(10000)
    g = torch.Generator().manual_seed(0)
    out = random_drop(tau, 0.3, True, g)
    kept = out != 0
    assert 0.25 < kept.float().mean() < 0.35
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / 0.3))
    assert abs(float(out.mean()) - 1.0) < 0.05  # unbiased in expectation
    base = {"w": torch.zeros(1000)}
    m = [{"w": torch.ones(1000)}]
    a = merge_state_dicts(base, m, MergeSpec("dare_linear", [1.0], [0.5]), seed=3)
    b = merge_state_dicts(base, m, MergeSpec("dare_linear", [1.0], [0.5]), seed=3)
    c = merge_state_dicts(base, m, MergeSpec("dare_linear", [1.0], [0.5]), seed=4)
    assert torch.equal(a["w"], b["w"]) and not torch.equal(a["w"], c["w"])
    assert set(a["w"].unique().tolist()) <= {0.0, 2.0}


def test_batchnorm_statistics_are_averaged_not_dropped():
    """DARE drops parameter deltas; a running variance whose delta is dropped-and-doubled went
    negative (1 + 2 * -0.8) and the merged model returned NaN. Statistics take the expected merge,
    and a variance is floored at 0 whatever the method."""
    base = {"conv.weight": torch.zeros(1000), "bn.running_mean": torch.zeros(1000), "bn.running_var": torch.ones(1000),
            "bn.num_batches_tracked": torch.tensor(7)}
    model = {"conv.weight": torch.ones(1000), "bn.running_mean": torch.ones(1000),
             "bn.running_var": torch.full((1000,), 0.2), "bn.num_batches_tracked": torch.tensor(9)}
    out = merge_state_dicts(base, [model], MergeSpec("dare_linear", [1.0], [0.5]), seed=0)
    assert set(out["conv.weight"].unique().tolist()) == {0.0, 2.0}  # parameters: dropped and rescaled
    assert torch.allclose(out["bn.running_var"], torch.full((1000,), 0.2))
    assert torch.allclose(out["bn.running_mean"], torch.ones(1000)) and int(out["bn.num_batches_tracked"]) == 7
    far = merge_state_dicts(base, [model], MergeSpec("task_arithmetic", [1.0], [1.0], lam=3.0))
    assert float(far["bn.running_var"].min()) == 0.0 and float(far["bn.running_mean"].min()) == 3.0


def test_dare_expectation_is_the_merge_its_random_drops_scatter_around():
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(400, generator=g)}
    models = [{"w": base["w"] + torch.randn(400, generator=g)} for _ in range(3)]
    spec = MergeSpec("dare_linear", [0.5, 0.3, 0.2], [0.5, 0.5, 0.8])
    expected = spec.expected()
    assert expected.method == "task_arithmetic" and expected.densities == [1.0] * 3 and not expected.stochastic
    mean = torch.stack([merge_state_dicts(base, models, spec, seed=s)["w"] for s in range(1000)]).mean(0)
    assert torch.allclose(mean, merge_state_dicts(base, models, expected)["w"], atol=0.1)
    # Without the rescale the survivors keep their size, so the expectation shrinks by density.
    plain = MergeSpec("dare_linear", [1.0], [0.25], rescale=False).expected()
    assert plain.weights == [0.25]
    ties = MergeSpec("dare_ties", [1.0, 1.0], [0.5, 0.5]).expected()
    assert (ties.method, ties.densities, ties.normalize) == ("ties", [1.0, 1.0], False)
    assert MergeSpec("ties", [1.0], [0.5]).expected() == MergeSpec("ties", [1.0], [0.5])


def test_scaled_task_vector_and_compatibility_check():
    base, model = _sd(1, 1, 1), _sd(2, 1, 0)
    tau = task_vector(base, model)
    assert torch.allclose(scaled(base, tau, 3.0)["w"], torch.tensor([4.0, 1.0, -2.0]))
    with pytest.raises(ValueError, match="shape"):
        check_compatible(base, {"w": torch.zeros(4), "n": torch.tensor(1)})
    with pytest.raises(ValueError, match="missing"):
        check_compatible(base, {"w": torch.zeros(3)})


def test_robust_z_flags_the_outlier_only():
    z = robust_z(torch.tensor([1.0, 1.02, 0.98, 1.01, 3.0]))
    assert z[-1] > 3.5 and (z[:-1].abs() < 1).all()
    base = {"layer.weight": torch.zeros(50)}
    g = torch.Generator().manual_seed(0)
    taus = [{"layer.weight": torch.randn(50, generator=g) * 0.1} for _ in range(4)]
    taus.append({"layer.weight": torch.randn(50, generator=g) * 1.0})
    stats = weight_space(base, taus, [str(i) for i in range(5)], 3.5, 0.25)
    assert stats[-1]["outlier"] and not any(s["outlier"] for s in stats[:-1])
    assert weight_space(base, taus[:2], ["a", "b"], 3.5, 0.25)[0]["status"] == "skipped"


def test_parse_mergekit_config_and_emit_without_blocked():
    cfg = parse_config({"models": [{"model": "org/base"},
                                   {"model": "org/a", "parameters": {"weight": 0.5, "density": 0.4}},
                                   {"model": "org/b", "parameters": {"weight": 0.3}}],
                        "base_model": "org/base", "merge_method": "ties",
                        "parameters": {"normalize": False, "density": 0.7}, "dtype": "float16"})
    assert cfg.candidates == ["org/a", "org/b"] and cfg.spec.weights == [0.5, 0.3]
    assert cfg.spec.densities == [0.4, 0.7] and cfg.spec.normalize is False
    safe = emit_config(cfg, ["org/a"])
    assert [m["model"] for m in safe["models"]] == ["org/base", "org/b"] and safe["dtype"] == "float16"
    assert explicit_config("b", ["x", "y"], "dare_ties", density=0.5).spec.weights == [0.5, 0.5]


@pytest.mark.parametrize("data, error", [
    ({"models": [{"model": "a", "parameters": {"weight": 1}}], "merge_method": "ties"}, UsageError),
    ({"models": [{"model": "a"}], "base_model": "b", "merge_method": "ties"}, UsageError),
    ({"models": [{"model": "a", "parameters": {"weight": 1}}], "base_model": "b", "merge_method": "slerp"},
     UnsupportedConfigError),
    ({"models": [{"model": "a", "parameters": {"weight": [0, 1]}}], "base_model": "b", "merge_method": "ties"},
     UnsupportedConfigError),
    ({"slices": [], "base_model": "b", "merge_method": "ties"}, UnsupportedConfigError),
    ({"models": [{"model": "a", "parameters": {"weight": 1, "density": 1.5}}], "base_model": "b",
      "merge_method": "ties"}, UsageError),
    (["not", "a", "mapping"], UsageError),
])
def test_bad_configs_are_rejected(data, error):
    with pytest.raises(error):
        parse_config(data)


def test_merging_zoo_manifest_on_disk_grows_with_every_model(tmp_path):
    """An interrupted merging-zoo build still leaves a manifest of what it saved or rejected."""
    import json

    from modelscan_bd.data import synthetic_dataset
    from modelscan_bd.zoo.merging import build_merging_zoo

    data = synthetic_dataset(image_size=16, n_train=300, n_test=200, seed=0)
    seen = []

    def progress(msg):
        if not msg.startswith("surrogate"):  # the attacker's own peers are not zoo members
            m = json.loads((tmp_path / "manifest.json").read_text())
            seen.append((len(m["models"]) + len(m["rejected"]), m["complete"]))

    final = build_merging_zoo(data, tmp_path, n_clean=1, attacks=("badnets",), base_epochs=1, epochs=1,
                              n_surrogates=1, progress=progress)
    assert seen == [(1, False), (2, False), (3, False)] and (tmp_path / "clean-data.npz").is_file()
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert "complete" not in on_disk and on_disk["kind"] == "merging"
    assert [m["name"] for m in on_disk["models"] + on_disk["rejected"]] == ["base", "clean-00", "badnets-00"]
    assert len(final["models"]) + len(final["rejected"]) == 3
