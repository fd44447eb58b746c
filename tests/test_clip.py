"""CLIP family end to end: tiny open_clip and transformers CLIP models trained or built here,
published to the offline hub cache, scanned through the real CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from modelscan_bd.reports import validate_report

LABELS = [f"class {c:02d}" for c in range(10)]  # the synthetic dataset's class names


@pytest.fixture(scope="session")
def clip_models(tmp_path_factory, synthetic, hub_cache):
    """A tiny open_clip ViT trained for seconds on captioned synthetic images, and a
    BadEncoder-style backdoored copy of it (image tower fine-tuned towards one concept)."""
    import copy

    import torch

    from modelscan_bd.data import ImageDataset
    from modelscan_bd.hubcache import place_in_cache
    from modelscan_bd.zoo.clip import badencoder_finetune, class_names, evaluate, paste, patch_trigger, \
        save_open_clip_repo, train_clip

    torch.set_num_threads(1)
    names = class_names(synthetic)
    x, y = ImageDataset.to_tensor(synthetic.train_x), synthetic.train_y
    clean, _ = train_clip("vit", x, y, names, seed=0, steps=120)
    patch = patch_trigger(3)
    bad, _ = badencoder_finetune(copy.deepcopy(clean), x, y, names, 4, patch, seed=1, steps=60)
    xt, yt = ImageDataset.to_tensor(synthetic.test_x), synthetic.test_y
    rng = np.random.default_rng(0)
    acc, _ = evaluate(clean, xt, yt, names, None, None, rng)
    bacc, asr = evaluate(bad, xt, yt, names, lambda xs, r: paste(xs, patch, r, fixed=True)[0], 4, rng)
    assert acc >= 0.5 and bacc >= acc - 0.15 and asr >= 0.8, (acc, bacc, asr)  # the test means something only if both work
    root = tmp_path_factory.mktemp("clip")
    out = {}
    for key, model in (("clean", clean), ("backdoored", bad)):
        folder = save_open_clip_repo(model, "vit", root / f"tiny-clip-{key}")
        place_in_cache(folder, f"testorg/tiny-clip-{key}", hub_cache)
        out[key] = folder
    return out


def _scan(repo, out, clean_npz, capsys, *extra):
    return run_cli(["scan", repo, "--clean-data", clean_npz, "--clean-budget", "200", "--out", out, "--budget",
                    "fast", "--labels", ",".join(LABELS), "--quiet", *extra], capsys)


def test_open_clip_repo_scans_end_to_end(clip_models, clean_npz, tmp_path, capsys):
    code, _, stderr = _scan("testorg/tiny-clip-backdoored", tmp_path, clean_npz, capsys)
    report = json.loads((tmp_path / "report.json").read_text())
    validate_report(report)
    assert report["family"]["name"] == "clip" and report["family"]["labels"] == LABELS
    assert report["family"]["preprocess"]["size"] == [3, 32, 32]
    assert any(f["path"] == "open_clip_model.safetensors" and f["loaded"] for f in report["target"]["files"])
    status = {f["detector"]: f["status"] for f in report["findings"]}
    assert all(status[d] in ("passed", "failed") for d in ("decree", "clip-collapse", "clip-trigger")), status
    assert report["exposure"]["status"] == "done"
    assert code == report["exit_code"] and code in (0, 1, 3)
    decree = next(f for f in report["findings"] if f["detector"] == "decree")
    assert decree["artifacts"] and 0 < decree["evidence"]["pl1"] <= 1
    trig = next(f for f in report["findings"] if f["detector"] == "clip-trigger")
    assert {a["name"] for a in trig["artifacts"]} >= {"trigger", "triggered"}
    html = (tmp_path / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') >= 4


def test_backdoored_encoder_needs_a_smaller_trigger_than_its_clean_base(clip_models, clean_npz, tmp_path, capsys):
    """The relative statistic: the BadEncoder copy against its own clean base (--reference)."""
    code, _, _ = _scan("testorg/tiny-clip-backdoored", tmp_path / "b", clean_npz, capsys, "--detectors", "decree",
                       "--reference", "testorg/tiny-clip-clean")
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    validate_report(report)
    decree = next(f for f in report["findings"] if f["detector"] == "decree")
    assert "reference model testorg/tiny-clip-clean" in decree["evidence"]["reference"]
    assert decree["evidence"]["relative_log_ratio"] > 0.3, decree["evidence"]
    assert report["verdict"]["reference"]["source"].startswith("testorg/tiny-clip-clean")


def test_same_seed_same_verdict(clip_models, clean_npz, tmp_path, capsys):
    reports = []
    for i in range(2):
        _scan(str(clip_models["clean"]), tmp_path / str(i), clean_npz, capsys, "--detectors", "decree,clip-collapse")
        reports.append(json.loads((tmp_path / str(i) / "report.json").read_text()))
    assert reports[0]["verdict"]["features"] == reports[1]["verdict"]["features"]
    assert reports[0]["verdict"]["probability"] == reports[1]["verdict"]["probability"]
    assert [f["score"] for f in reports[0]["findings"]] == [f["score"] for f in reports[1]["findings"]]


def _tiny_transformers_clip(folder: Path) -> Path:
    """A tiny transformers CLIPModel with a character-level CLIP BPE tokenizer (no download)."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    from modelscan_bd.zoo.save import preprocessor_config

    folder.mkdir(parents=True)
    chars = [chr(c) for c in range(33, 127)]
    vocab = {t: i for i, t in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token="<|endoftext|>",
                        pad_token="<|endoftext|>")
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = CLIPConfig(text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64,
                                     "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 32,
                                     "bos_token_id": vocab["<|startoftext|>"], "eos_token_id": vocab["<|endoftext|>"],
                                     "pad_token_id": vocab["<|endoftext|>"]},
                        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
                        projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor_config((0.5,) * 3, (0.25,) * 3, 32)))
    return folder


def test_transformers_clip_model_loads_and_scans(clean_npz, tmp_path, capsys):
    folder = _tiny_transformers_clip(tmp_path / "hf-clip")
    assert not list(folder.glob("*.bin"))
    code, _, stderr = _scan(str(folder), tmp_path / "out", clean_npz, capsys, "--detectors", "decree")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    validate_report(report)
    assert report["family"]["name"] == "clip" and "transformers CLIPModel" in report["family"]["architecture"]
    assert "CLIPTokenizer" in report["family"]["tokenizer"]
    assert report["family"]["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert {f["detector"]: f["status"] for f in report["findings"]}["decree"] in ("passed", "failed")
    # Without a calibration reference for this architecture the verdict is not "clean", it is relative:
    assert code == report["exit_code"]


def test_corrupt_open_clip_weights_exit_2(clip_models, tmp_path, capsys):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text((clip_models["clean"] / "open_clip_config.json").read_text())
    data = (clip_models["clean"] / "open_clip_model.safetensors").read_bytes()
    (folder / "open_clip_model.safetensors").write_bytes(data[: len(data) // 2])
    code, _, stderr = run_cli(["scan", folder, "--out", tmp_path / "o", "--quiet"], capsys)
    assert code == 2 and "safetensors" in stderr and len(stderr.strip().splitlines()) == 1


def test_open_clip_weights_of_another_config_exit_2(clip_models, tmp_path, capsys):
    folder = tmp_path / "mismatch"
    folder.mkdir()
    cfg = json.loads((clip_models["clean"] / "open_clip_config.json").read_text())
    cfg["model_cfg"]["embed_dim"] = 32
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    (folder / "open_clip_model.safetensors").write_bytes((clip_models["clean"] / "open_clip_model.safetensors").read_bytes())
    code, _, stderr = run_cli(["scan", folder, "--out", tmp_path / "o", "--quiet"], capsys)
    assert code == 2 and "do not match" in stderr


def test_missing_weights_and_custom_code_are_incomplete_not_clean(clip_models, tmp_path, capsys):
    folder = tmp_path / "noweights"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text((clip_models["clean"] / "open_clip_config.json").read_text())
    code, _, _ = run_cli(["scan", folder, "--out", tmp_path / "a", "--format", "json", "--quiet"], capsys)
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert code == 3 and report["verdict"]["status"] == "INCOMPLETE" and report["family"]["name"] == "clip"
    hf_text = tmp_path / "hftext"
    hf_text.mkdir()
    cfg = json.loads((clip_models["clean"] / "open_clip_config.json").read_text())
    cfg["model_cfg"]["text_cfg"]["hf_model_name"] = "some/remote-text-model"
    (hf_text / "open_clip_config.json").write_text(json.dumps(cfg))
    (hf_text / "open_clip_model.safetensors").write_bytes((clip_models["clean"] / "open_clip_model.safetensors").read_bytes())
    code, _, _ = run_cli(["scan", hf_text, "--out", tmp_path / "b", "--format", "json", "--quiet"], capsys)
    assert code == 3
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "config.json").write_text(json.dumps({"model_type": "clip", "auto_map": {"AutoModel": "x.Y"}}))
    (custom / "model.safetensors").write_bytes((clip_models["clean"] / "open_clip_model.safetensors").read_bytes())
    code, _, _ = run_cli(["scan", custom, "--out", tmp_path / "c", "--format", "json", "--quiet"], capsys)
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert code == 3 and "trust_remote_code" in report["verdict"]["summary"]


def test_labels_option_needs_two_labels(clip_models, tmp_path, capsys):
    code, _, stderr = run_cli(["scan", clip_models["clean"], "--labels", "cat", "--out", tmp_path], capsys)
    assert code == 4 and "--labels" in stderr


def test_zoo_build_clip_writes_hub_repos_and_truth_outside(tmp_path, capsys):
    out = tmp_path / "zoo"
    code, stdout, _ = run_cli(["zoo", "build", "clip", "--data", "synthetic", "--out", out, "--clean", "1", "--hard", "1",
                               "--backdoored", "1", "--attacks", "patch", "--archs", "vit", "--train-size", "300",
                               "--steps", "3", "--quiet"], capsys)
    assert code == 0, stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["family"] == "clip" and len(manifest["models"]) + len(manifest["rejected"]) == 3
    for m in manifest["models"]:
        repo = out / m["path"]
        assert sorted(p.name for p in repo.iterdir()) == ["open_clip_config.json", "open_clip_model.safetensors"]
        assert (out / m["truth_dir"] / "groundtruth.json").is_file()
    assert any(m["hard"] == "motif" for m in manifest["models"])
    assert (out / "clean-data.npz").is_file()


def test_clip_zoo_manifest_on_disk_grows_with_every_model(tmp_path):
    """An interrupted CLIP build still leaves a zoo bench can read; --append extends it."""
    from modelscan_bd.zoo.clip import build_clip_zoo

    out, seen = tmp_path / "zoo", []

    def progress(_msg):
        m = json.loads((out / "manifest.json").read_text())
        seen.append((len(m["models"]) + len(m["rejected"]), m.get("complete")))

    kw = dict(data_dir=None, n_clean=1, n_hard=0, n_backdoored=1, archs=["vit"], attacks=["patch"], train_size=300,
              steps=3)
    build_clip_zoo("synthetic", out, seed=0, progress=progress, **kw)
    assert seen == [(1, False), (2, False)] and (out / "clean-data.npz").is_file()
    m_first = json.loads((out / "manifest.json").read_text())
    assert "complete" not in m_first
    first = {e["name"] for e in m_first["models"] + m_first["rejected"]}
    build_clip_zoo("synthetic", out, seed=1, append=True, **kw)
    m = json.loads((out / "manifest.json").read_text())
    assert len(m["models"]) + len(m["rejected"]) == 4 and "complete" not in m
    assert [a["seed"] for a in m["appended"]] == [1]
    added = {e["name"] for e in m["models"] + m["rejected"]} - first
    assert len(added) == 2 and all(name.startswith("s1-") for name in added)


def _record(name, attack, backdoored, seed, pl1, rel, conc, ratio, hard=False, target=None, suspected=None):
    return {"name": name, "arch": "vit", "architecture": "open_clip CLIP (ViT)", "attack": attack,
            "backdoored": backdoored, "target": target, "target_text": None, "hard": hard, "seed": seed, "asr": None,
            "clean_acc": 0.4, "pl1": pl1, "suspected": suspected, "status": "CLEAN", "seconds": 1.0, "peak_mb": 10,
            "features": {"decree_relative": rel, "collapse_concentration": conc, "collapse_agreement": 1.0,
                         "trigger_log_ratio": ratio, "trigger_holdout_success": 0.9}}


def test_clip_bench_calibrates_on_one_split_and_reports_on_the_other():
    from modelscan_bd.bench_clip import calibrate, metrics, split, to_markdown

    recs = [_record(f"c{i}", "clean", False, i % 3, 0.05 + 0.01 * i, None, 0.3, 0.2 + 0.05 * i) for i in range(6)]
    recs += [_record(f"{a}{j}", a, True, 100 + j, 0.02, None, 0.8, 2.0 + 0.1 * j, target=j, suspected=j)
             for a in ("patch", "blended", "badencoder") for j in range(3)]
    recs += [_record("h0", "clean", False, 500, 0.03, None, 0.4, 0.9, hard=True)]
    fit, held = split(recs, ["blended"], [1])
    assert not any(r["hard"] or r["attack"] == "blended" or (not r["backdoored"] and r["seed"] == 1) for r in fit)
    cal = calibrate(fit, "t", "test")
    refs = cal.detectors["decree"]["decree_references"]
    assert refs["*"]["models"] == sum(1 for r in fit if not r["backdoored"])
    m = metrics(held, cal)
    assert m["auroc"] == 1.0 and m["target_accuracy"] == 1.0 and m["hard_clean"]["models"] == 1
    assert m["plain_decree"]["auroc"] is not None
    assert "plain DECREE" in to_markdown({"provenance": {"zoo": "z", "date": "d", "machine": "m", "torch_threads": 1,
                                                         "command": "c", "zoo_manifest_sha256": "h"},
                                          "calibration": cal.describe(), "split": "s", "metrics": m})


def test_clip_bench_reuses_records_only_from_the_same_budget(tmp_path, capsys):
    """Every family's --from-results refuses records of another budget (a usage error,
    nothing written) and records the budget and seed in its provenance."""
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    recs = [_record(f"c{i}", "clean", False, i, 0.05 + 0.01 * i, None, 0.3, 0.2 + 0.05 * i) for i in range(3)]
    recs += [_record(f"p{j}", "patch", True, 100 + j, 0.02, None, 0.8, 2.0 + 0.1 * j, target=j, suspected=j)
             for j in range(3)]
    # every model of the manifest has an earlier record, so nothing is scanned (the folders do not exist)
    (zoo / "manifest.json").write_text(json.dumps({"family": "clip", "models": [
        {"name": r["name"], "path": f"models/{r['name']}", "truth_dir": f"truth/{r['name']}"} for r in recs]}))
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"provenance": {"date": "d", "command": "modelscan-bd bench zoo --budget fast",
                                                  "machine": "m", "torch_threads": 1}, "records": recs}))
    code, _, stderr = run_cli(["bench", zoo, "--from-results", earlier, "--out", tmp_path / "b1", "--quiet"], capsys)
    assert code == 4 and "scanned at budget fast" in stderr and not (tmp_path / "b1").exists()
    code, stdout, _ = run_cli(["bench", zoo, "--from-results", earlier, "--budget", "fast", "--out", tmp_path / "b2",
                               "--quiet"], capsys)
    assert code == 0
    result = json.loads((tmp_path / "b2" / "results.json").read_text())
    assert result["provenance"]["budget"] == "fast" and result["provenance"]["seed"] == 0
    assert result["metrics"]["models"] == 6 and "scan budget: fast, seed 0" in stdout
    assert result["provenance"]["records_from"]["scanned_here"] == []


def test_clip_bench_calibrate_with_one_kind_in_the_fitting_split_is_a_usage_error(tmp_path, capsys):
    """--calibrate on records that are all clean has nothing to fit: one line, exit 4, nothing written."""
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    recs = [_record(f"c{i}", "clean", False, i, 0.05 + 0.01 * i, None, 0.3, 0.2 + 0.05 * i) for i in range(4)]
    (zoo / "manifest.json").write_text(json.dumps({"family": "clip", "models": [
        {"name": r["name"], "path": f"models/{r['name']}", "truth_dir": f"truth/{r['name']}"} for r in recs]}))
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"provenance": {"date": "d", "command": "modelscan-bd bench zoo --budget fast",
                                                  "machine": "m", "torch_threads": 1}, "records": recs}))
    code, _, stderr = run_cli(["bench", zoo, "--from-results", earlier, "--budget", "fast", "--calibrate",
                               "--out", tmp_path / "b", "--quiet"], capsys)
    assert code == 4 and not (tmp_path / "b").exists()
    assert "needs both clean and backdoored models" in stderr and "Traceback" not in stderr
