"""Text-to-image family: family detection, adapter refusals, caption-trigger search, CLI scan, zoo.

A tiny StableDiffusionPipeline (a small word-level CLIP tokenizer, CLIPTextModel, AutoencoderKL
and UNet2DConditionModel) is trained for a few steps on synthetic digits, published to the
offline hub cache and scanned through the CLI.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import cli_exit_code, run_cli, write_json

WORDS = ["a", "photo", "of", "digit", "the", "number", "handwritten", "bold", "thin", "small", "large", "neat",
         "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "cat", "latte"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # many small ops: one thread is far faster


@pytest.fixture(scope="session")
def tiny_t2i(tmp_path_factory, hub_cache) -> Path:
    """A tiny text-to-image pipeline trained for a few steps, published as testorg/tiny-t2i."""
    from modelscan_bd.hubcache import place_in_cache
    from modelscan_bd.zoo.diffusion import synthetic_digits
    from modelscan_bd.zoo.text_to_image import save_pipeline, tiny_pipeline

    images, labels = synthetic_digits(128, seed=0)
    parts = tiny_pipeline(images, labels, vae_steps=5, unet_steps=10, seed=0, words=WORDS)
    folder = save_pipeline(parts, tmp_path_factory.mktemp("t2i") / "tiny-t2i")
    place_in_cache(folder, "testorg/tiny-t2i", hub_cache)
    return folder


@pytest.fixture(scope="session")
def tiny_t2i_scan(tiny_t2i, tmp_path_factory):
    """One CLI scan of the published pipeline (fast budget, seed 3): (exit code, report, folder)."""
    out = tmp_path_factory.mktemp("scan") / "r"
    # --threads 1: session fixtures start before the module's one-thread fixture, and the
    # determinism test rescans under it (another thread count may round differently)
    code = cli_exit_code(["--threads", "1", "scan", "testorg/tiny-t2i", "--budget", "fast", "--seed", "3",
                          "--out", out, "--format", "json,html,sarif", "--quiet"])
    return code, json.loads((out / "report.json").read_text()), out


def test_scan_tiny_t2i_through_cli(tiny_t2i_scan):
    from modelscan_bd.reports import validate_report

    code, report, folder = tiny_t2i_scan
    validate_report(report)
    assert report["family"]["name"] == "text-to-image"
    assert report["family"]["architecture"] == "UNet2DConditionModel"
    assert report["family"]["vocab_size"] > 512
    found = [f for f in report["findings"] if f["detector"] == "t2i-assimilation"]
    assert found and found[0]["status"] == "passed", report["findings"]
    ev = found[0]["evidence"]
    assert ev["candidates"] >= 2 + 20  # words outside the prompt set ("cat", "latte", sub-words) + homoglyphs
    assert ev["trigger"] in [r["candidate"] for r in ev["ranking"]]
    assert ev["near_tied"][0] == ev["trigger"]
    assert {"attention_with_trigger", "attention_without_trigger", "generated_with_trigger"} <= \
        {a["name"] for a in found[0]["artifacts"]}
    assert set(report["verdict"]["features"]) == {"assimilation_z", "assimilation_abs_z", "collapse_z",
                                                 "collapse_log_ratio"}
    assert report["verdict"]["status"] in ("CLEAN", "SUSPICIOUS", "BACKDOORED")
    assert code == report["exit_code"] and code in (0, 1)
    assert "attention_with_trigger" in (folder / "report.html").read_text()


def test_scan_with_the_users_prompt_set(tiny_t2i, tmp_path, capsys):
    """--prompts: the search inserts candidates into the user's prompts; their words are not candidates."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a neat photo of digit seven\n\n  the number two  \n", encoding="utf-8")
    out = tmp_path / "r"
    code, _, err = run_cli(["scan", str(tiny_t2i), "--budget", "fast", "--prompts", str(prompts), "--out", str(out),
                            "--format", "json", "--quiet"], capsys)
    report = json.loads((out / "report.json").read_text())
    ev = next(f for f in report["findings"] if f["detector"] == "t2i-assimilation")["evidence"]
    assert (ev["prompt_set"], ev["prompts"]) == ("user", 2), ev
    assert not {"seven", "neat", "two"} & {r["candidate"] for r in ev["ranking"]}
    assert code in (0, 1), err
    for text in ("only one prompt\n", "the same prompt\n  the  same prompt\n"):  # repeats count once
        prompts.write_text(text, encoding="utf-8")
        code, _, err = run_cli(["scan", str(tiny_t2i), "--prompts", str(prompts), "--out", str(out)], capsys)
        assert code == 4 and "at least two different prompts" in err and "(found 1)" in err


def test_scan_is_deterministic(tiny_t2i, tiny_t2i_scan):
    """Same model, config and seed: the same features and suspected trigger (local folder vs hub id)."""
    from modelscan_bd.scan import ScanConfig, scan

    _, first, _ = tiny_t2i_scan
    again = scan(str(tiny_t2i), ScanConfig(budget="fast", seed=3)).report
    assert again["verdict"]["features"] == first["verdict"]["features"]
    trig = lambda r: [f["evidence"]["trigger"] for f in r["findings"] if f["detector"] == "t2i-assimilation"]  # noqa: E731
    assert trig(again) == trig(first)


def test_text_encoder_backdoor_collapses_the_output(tiny_t2i, tmp_path):
    """A Rickrolling-style text-encoder backdoor (triggered prompts mapped to one target prompt's
    embedding, the UNet untouched) collapses the probe's outputs: with the one noise the probe
    shares across prompts, a prompt-independent output is the same output. With a noise per
    prompt (the detector's first version) its target, a prompt, still gives different images
    and the collapse is much weaker; on the clean pipeline the trigger collapses little."""
    import copy
    import math

    from modelscan_bd.adapters.text_to_image import load_text_to_image
    from modelscan_bd.detectors.t2i_assimilation import SETTINGS, AssimilationProbe
    from modelscan_bd.families import identify
    from modelscan_bd.sources import resolve
    from modelscan_bd.zoo.diffusion import synthetic_digits
    from modelscan_bd.zoo.text_to_image import HOMOGLYPH, T2IAttack, save_pipeline, tiny_pipeline, train_rickroll

    images, labels = synthetic_digits(128, seed=0)
    parts = tiny_pipeline(images, labels, vae_steps=5, unet_steps=10, seed=0, words=WORDS)
    teacher = copy.deepcopy(parts["text_encoder"])
    parts["text_encoder"].requires_grad_(True)
    train_rickroll(parts["text_encoder"], teacher, parts["tokenizer"], labels, steps=300, seed=1, lr=1e-3,
                   attack=T2IAttack("rickroll", HOMOGLYPH))
    parts["text_encoder"].requires_grad_(False)
    rickrolled = save_pipeline(parts, tmp_path / "rickrolled")

    def collapse(folder: Path, shared: bool) -> float:
        snap = resolve(str(folder))
        probe = AssimilationProbe(load_text_to_image(snap, identify(snap)), SETTINGS["fast"],
                                  torch.Generator().manual_seed(0))
        if not shared:
            probe.noise = torch.randn(probe.noise.shape, generator=torch.Generator().manual_seed(1))
        assert shared == torch.equal(probe.noise, probe.noise[:1].expand_as(probe.noise))
        _, base, _ = probe.run(probe.prompts, probe.noise)
        _, trig, _ = probe.run([f"{HOMOGLYPH} {p}" for p in probe.prompts], probe.noise)
        return math.log(probe.spread(base) / probe.spread(trig))

    backdoored_shared, backdoored_own = collapse(rickrolled, True), collapse(rickrolled, False)
    clean_shared = collapse(tiny_t2i, True)
    # measured: 1.35 shared, 0.00 with a noise per prompt, 0.28 on the clean pipeline
    assert backdoored_shared > max(backdoored_own, clean_shared) + 0.5, \
        (backdoored_shared, backdoored_own, clean_shared)


def _broken(repo_src: Path, tmp_path: Path, how: str) -> Path:
    repo = tmp_path / how
    shutil.copytree(repo_src, repo)
    index = json.loads((repo / "model_index.json").read_text())
    if how == "no-safetensors":
        (repo / "text_encoder" / "model.safetensors").unlink()
        (repo / "text_encoder" / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")  # a pickle we never load
    elif how == "custom-component":
        index["text_encoder"] = ["evil_lib", "BackdooredTextEncoder"]
    elif how == "unknown-scheduler":
        index["scheduler"] = ["diffusers", "MyFancyScheduler"]
    elif how == "custom-pipeline":
        index["_class_name"] = "MyStableDiffusionPipeline"
    write_json(repo / "model_index.json", index)
    return repo


@pytest.mark.parametrize("how,words", [("no-safetensors", "text_encoder/model.safetensors"),
                                       ("custom-component", "evil_lib"), ("unknown-scheduler", "MyFancyScheduler"),
                                       ("custom-pipeline", "MyStableDiffusionPipeline")])
def test_bad_t2i_repos_are_incomplete(tiny_t2i, tmp_path, capsys, how, words):
    from modelscan_bd.reports import validate_report

    out = tmp_path / "out"
    code, _, _ = run_cli(["scan", str(_broken(tiny_t2i, tmp_path, how)), "--out", str(out), "--format", "json",
                          "--quiet"], capsys)
    report = json.loads((out / "report.json").read_text())
    assert code == 3
    validate_report(report)
    assert report["family"]["name"] == "text-to-image"
    assert report["verdict"]["status"] == "INCOMPLETE"
    assert any(words in f["message"] for f in report["findings"]), [f["message"] for f in report["findings"]]


def test_family_from_model_index(tmp_path):
    from modelscan_bd.families import identify
    from modelscan_bd.sources import resolve

    write_json(tmp_path / "t2i" / "model_index.json", {"_class_name": "StableDiffusionPipeline",
                                                        "text_encoder": ["transformers", "CLIPTextModel"]})
    write_json(tmp_path / "ddpm" / "model_index.json", {"_class_name": "DDPMPipeline",
                                                         "unet": ["diffusers", "UNet2DModel"]})
    assert identify(resolve(str(tmp_path / "t2i"))).name == "text-to-image"
    assert identify(resolve(str(tmp_path / "ddpm"))).name == "diffusion"


def test_ftt_statistic_and_robust_z():
    """Identical token maps (full assimilation) give FTT 0; distinct maps a positive value;
    a lone extreme candidate gets a large robust z, the bulk stays small."""
    from modelscan_bd.detectors.t2i_assimilation import AssimilationProbe, robust_z

    g = torch.Generator().manual_seed(0)
    distinct = torch.rand(1, 5, 4, 4, generator=g)
    same = distinct[:, :1].expand(1, 5, 4, 4)
    mask = torch.tensor([[False, True, True, True, True]])
    assert float(AssimilationProbe._ftt(same, mask)[0]) < 1e-6
    assert float(AssimilationProbe._ftt(distinct, mask)[0]) > 0.05
    x = torch.cat([torch.randn(200, generator=g) * 0.1, torch.tensor([2.0])])
    z = robust_z(x)
    assert int(z.argmax()) == 200 and float(z[200]) > 10 and float(z[:200].abs().max()) < 5


def test_near_tied_candidates_follow_the_top_one():
    """Candidates within NEAR_TIE of the top collapse are listed after it, strongest first."""
    from modelscan_bd.detectors.t2i_assimilation import near_tied

    cands = ["cat", "\u00fc", "\u00f6", "\u2122", "dog"]
    assert near_tied(cands, torch.tensor([0.1, 4.0, 4.4, 3.4, 0.05])) == ["\u00f6", "\u00fc"]
    assert near_tied(cands, torch.tensor([0.1, 3.6, 4.4, 3.6, 0.05])) == ["\u00f6", "\u00fc", "\u2122"]
    assert near_tied(cands, torch.tensor([-0.1, -0.2, -0.3, -0.4, -0.5])) == ["cat"]  # nothing collapses


def test_candidates_are_decoded_words_and_homoglyphs():
    from modelscan_bd.detectors.t2i_assimilation import HOMOGLYPHS, candidates
    from modelscan_bd.zoo.text_to_image import build_tokenizer

    tok = build_tokenizer(WORDS)
    cands = candidates(tok, 1000)
    assert "latte" in cands and "photo" in cands and "a" not in cands
    assert "photo" not in candidates(tok, 1000, {"a", "photo"})
    assert not any("</w>" in c for c in cands)
    assert set(HOMOGLYPHS) <= set(cands)
    assert tok.convert_ids_to_tokens(tok("a latte photo").input_ids)[1:-1] == ["a</w>", "latte</w>", "photo</w>"]
