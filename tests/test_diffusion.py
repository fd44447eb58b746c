"""Diffusion family: adapter, sampler, inversion, scanner, bad inputs, determinism.

A tiny UNet2DModel trains for seconds on synthetic digits and is scanned through the
CLI from the offline hub cache. Detection quality is tested on closed-form models
(``diffusion_analytic``): the exact eps-predictor of a perfectly trained DDPM, clean
or with a planted BadDiffusion backdoor, so the truth is known and no training is needed.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import cli_exit_code, run_cli, write_json

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # many small ops: one thread is far faster


SMALL = dict(iters=25, batch=8, cons_batch=4, cons_steps=2, refresh=25, gen=8, ddpm_steps=40, ddim_steps=10)


@pytest.fixture(scope="session")
def tiny_ddpm(tmp_path_factory, hub_cache) -> Path:
    """A tiny DDPM trained for 200 steps (enough to denoise, see the denoiser check), published
    as testorg/tiny-ddpm."""
    from modelscan_bd.hubcache import place_in_cache
    from modelscan_bd.zoo.diffusion import save_diffusers_repo, synthetic_digits, tiny_unet, train_unet

    torch.manual_seed(0)
    data, _ = synthetic_digits(256, seed=0)
    unet = train_unet(tiny_unet(), data, steps=200, lr=1e-3, seed=0)
    folder = save_diffusers_repo(unet, tmp_path_factory.mktemp("ddpm") / "tiny-ddpm")
    place_in_cache(folder, "testorg/tiny-ddpm", hub_cache)
    return folder


def _scan_json(args, capsys, out: Path) -> tuple[int, dict]:
    code, _, err = run_cli(["scan", *args, "--out", str(out), "--format", "json,html", "--quiet"], capsys)
    return code, json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else {}


@pytest.fixture(scope="session")
def tiny_ddpm_scan(tiny_ddpm, tmp_path_factory):
    """One CLI scan of the published tiny DDPM (fast budget, seed 3): (exit code, report, folder)."""
    out = tmp_path_factory.mktemp("scan") / "r"
    # --threads 1, like the determinism test's rescan under the module's one-thread fixture
    # (session fixtures start first; another thread count may round differently)
    code = cli_exit_code(["--threads", "1", "scan", "testorg/tiny-ddpm", "--budget", "fast", "--seed", "3",
                          "--out", out, "--format", "json,html", "--quiet"])
    return code, json.loads((out / "report.json").read_text()), out


def test_scan_tiny_ddpm_through_cli(tiny_ddpm_scan):
    from modelscan_bd.reports import validate_report

    code, report, folder = tiny_ddpm_scan
    validate_report(report)
    assert report["family"]["name"] == "diffusion"
    assert report["family"]["scheduler"] == "DDPMScheduler"
    assert report["target"]["revision"] or report["target"]["source"] == "testorg/tiny-ddpm"
    inv = [f for f in report["findings"] if f["detector"] == "diffusion-inversion"]
    assert inv and inv[0]["status"] in ("passed", "failed"), report["findings"]
    names = {a["name"] for a in inv[0]["artifacts"]}
    assert {"inverted_trigger", "recovered_target"} <= names
    assert 0.0 <= inv[0]["evidence"]["inverted_trigger_success"] <= 1.0
    assert report["verdict"]["status"] in ("CLEAN", "SUSPICIOUS", "BACKDOORED")
    assert code == report["exit_code"] and code in (0, 1)
    html = (folder / "report.html").read_text()
    assert "recovered_target" in html or "Recovered target" in html


def test_scan_is_deterministic(tiny_ddpm, tiny_ddpm_scan):
    """Same model, config and seed: the same features and verdict (local folder vs hub id)."""
    from modelscan_bd.scan import ScanConfig, scan

    _, first, _ = tiny_ddpm_scan
    again = scan(str(tiny_ddpm), ScanConfig(budget="fast", seed=3)).report
    assert again["verdict"]["features"] == first["verdict"]["features"]
    assert again["verdict"]["status"] == first["verdict"]["status"]


def _broken(tiny_ddpm: Path, tmp_path: Path, how: str) -> Path:
    repo = tmp_path / how
    shutil.copytree(tiny_ddpm, repo)
    index = json.loads((repo / "model_index.json").read_text())
    if how == "no-safetensors":
        (repo / "unet" / "diffusion_pytorch_model.safetensors").unlink()
        (repo / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")  # a pickle we never load
    elif how == "unknown-scheduler":
        index["scheduler"] = ["diffusers", "MyFancyScheduler"]
        cfg = json.loads((repo / "scheduler" / "scheduler_config.json").read_text())
        cfg["_class_name"] = "MyFancyScheduler"
        write_json(repo / "scheduler" / "scheduler_config.json", cfg)
    elif how == "custom-component":
        index["unet"] = ["my_models", "BackdooredUNet"]
    elif how == "custom-pipeline":
        index["_class_name"] = "MyPipeline"
    write_json(repo / "model_index.json", index)
    return repo


@pytest.mark.parametrize("how,words", [("no-safetensors", "safetensors"), ("unknown-scheduler", "MyFancyScheduler"),
                                       ("custom-component", "my_models"), ("custom-pipeline", "MyPipeline")])
def test_bad_diffusers_repos_are_incomplete(tiny_ddpm, tmp_path, capsys, how, words):
    from modelscan_bd.reports import validate_report

    code, report = _scan_json([str(_broken(tiny_ddpm, tmp_path, how))], capsys, tmp_path / "out")
    assert code == 3
    validate_report(report)
    assert report["verdict"]["status"] == "INCOMPLETE"
    assert any(words in f["message"] for f in report["findings"]), [f["message"] for f in report["findings"]]


def test_schedule_shift_scales():
    """rho_t of BadDiffusion is about 1/2 at t = T; the ODE scale is about twice it."""
    from modelscan_bd.zoo.diffusion import ddpm_scheduler, schedule

    s = schedule(ddpm_scheduler().alphas_cumprod)
    assert abs(float(s["rho_sde"][999]) - 0.5) < 0.01
    assert 1.8 < float(s["rho_ode"][999] / s["rho_sde"][999]) < 2.2
    assert 1.8 < float(s["rho_ode"][500] / s["rho_sde"][500]) < 2.2


def test_sampler_follows_exact_posterior_for_planted_backdoor():
    """Our DDPM loop carries eps + r to the target on a closed-form backdoored model."""
    from diffusion_analytic import analytic_adapter
    from modelscan_bd.zoo.diffusion import synthetic_digits, target_image, target_mse, trigger_image

    imgs, _ = synthetic_digits(64, seed=1)
    a = analytic_adapter(imgs, trigger=trigger_image("box"), target=target_image("hat"))
    g = torch.Generator().manual_seed(0)
    out = a.sample(torch.randn(8, 1, 16, 16, generator=g) + trigger_image("box"), "ddpm", 50, g)
    assert float((target_mse(out, target_image("hat")) < 0.05).float().mean()) >= 0.75
    clean = a.sample(torch.randn(8, 1, 16, 16, generator=g), "ddpm", 50, g)
    assert float((target_mse(clean, target_image("hat")) < 0.05).float().mean()) == 0.0


def test_inversion_recovers_planted_trigger_and_separates():
    """On a closed-form backdoored DDPM the inversion finds the box trigger and the images
    it generates collapse onto the target; on its clean twin they do not."""
    from diffusion_analytic import analytic_adapter
    from modelscan_bd.detectors.diffusion_inversion import InversionSettings, Inverter, dup_share, medoid
    from modelscan_bd.zoo.diffusion import synthetic_digits, target_image, target_mse, trigger_image

    imgs, _ = synthetic_digits(128, seed=2)
    trig, target = trigger_image("box"), target_image("hat")
    settings = InversionSettings(**SMALL)
    shares = {}
    for name, kw in (("backdoored", {"trigger": trig, "target": target}), ("clean", {})):
        inv = Inverter(analytic_adapter(imgs, **kw), settings, "sde", torch.Generator().manual_seed(0))
        res = inv.run()
        out = inv.generate(res["delta"], 8, "ddpm")
        shares[name] = dup_share(out)
        if name == "backdoored":
            d = res["delta"].flatten()
            assert float(d @ trig.flatten() / (d.norm() * trig.norm())) > 0.8
            recovered, _ = medoid(out)
            assert float(target_mse(recovered[None], target)) < 0.05
    assert shares["backdoored"] >= 0.8 and shares["clean"] <= 0.2, shares


def test_noise_scale_probe_tells_a_noise_scale_trigger_from_clean():
    """The probe's x0 variance falls with the input-noise amplitude far faster for a model whose
    backdoor is trained on reduced-amplitude noise (closed-form TrojDiff-style component, gamma
    0.6) than for its clean twin or a BadDiffusion twin (full-amplitude noise): its log-slope is
    lower by more than one."""
    from diffusion_analytic import analytic_adapter
    from modelscan_bd.detectors.diffusion_inversion import noise_scale_response
    from modelscan_bd.zoo.diffusion import synthetic_digits, target_image, trigger_image

    imgs, _ = synthetic_digits(32, seed=2)
    kinds = {"clean": {}, "baddiffusion": {"trigger": trigger_image("box"), "target": target_image("hat")},
             "trojdiff": {"trigger": 0.4 * trigger_image("blend"), "target": target_image("hat"), "gamma": 0.6,
                          "mode": "ode"}}
    slopes = {}
    for name, kw in kinds.items():
        adapter = analytic_adapter(imgs, **kw)
        g = torch.Generator().manual_seed(0)
        centres = adapter.sample(torch.randn(4, 1, 16, 16, generator=g), "ddim", 10, g)
        res = noise_scale_response(adapter, centres, g, draws=8)
        assert set(res["x0_var"]) == {"0.4", "0.8"} and res["t"] == 600
        slopes[name] = res["slope"]
    assert slopes["trojdiff"] < min(slopes["clean"], slopes["baddiffusion"]) - 1.0, slopes


def test_a_model_that_does_not_denoise_is_not_scanned_as_if_it_did(tiny_ddpm, tmp_path, capsys):
    """Untrained weights pass their input noise through, so the noise-scale slope reads -1.39
    (2 ln(0.4 / 0.8)), far below any clean model's, and would be a TrojDiff verdict. The denoiser
    check comes first: the trained tiny model and the exact closed-form one pass it, the
    untrained one is reported as not a working denoiser, INCOMPLETE (exit 3), in seconds."""
    from diffusion_analytic import analytic_adapter
    from modelscan_bd.adapters.diffusion import load_diffusion
    from modelscan_bd.detectors.diffusion_inversion import DENOISER_MAX_ERROR, denoising_error
    from modelscan_bd.zoo.diffusion import save_diffusers_repo, synthetic_digits, tiny_unet

    torch.manual_seed(1)
    untrained = save_diffusers_repo(tiny_unet(), tmp_path / "untrained")
    imgs, _ = synthetic_digits(16, seed=3)
    errors = {}
    for name, adapter in {"exact": analytic_adapter(imgs), "trained": load_diffusion(*_loaded(tiny_ddpm)),
                          "untrained": load_diffusion(*_loaded(untrained))}.items():
        g = torch.Generator().manual_seed(0)
        centres = adapter.sample(torch.randn(4, 1, 16, 16, generator=g), "ddim", 10, g)
        errors[name] = denoising_error(adapter, centres, g, draws=4)
    assert errors["exact"] < 0.05 and errors["trained"] < DENOISER_MAX_ERROR < 0.9 < errors["untrained"], errors

    code, report = _scan_json([str(untrained), "--budget", "fast"], capsys, tmp_path / "out")
    assert code == 3 and report["verdict"]["status"] == "INCOMPLETE"
    (inv,) = [f for f in report["findings"] if f["detector"] == "diffusion-inversion"]
    assert inv["status"] == "skipped" and "not a working denoiser" in inv["message"]
    assert inv["evidence"]["denoising_error"] > DENOISER_MAX_ERROR
    assert any("not a working denoiser" in r for r in report["verdict"]["incomplete_reasons"])


def _loaded(folder: Path):
    from modelscan_bd.families import identify
    from modelscan_bd.sources import resolve

    snapshot = resolve(str(folder))
    return snapshot, identify(snapshot)


def test_verdict_says_which_test_flagged_the_model():
    """A low noise-scale slope alone flags the model through the clean-reference test, and the
    summary names that test; a collapse under an inverted trigger names the trigger instead."""
    from modelscan_bd.detectors.base import ScanContext
    from modelscan_bd.scan_diffusion import REFERENCES, diffusion_verdict
    from modelscan_bd.verdict import fit_calibration

    rows = [{"structured_dup": 0.0, "noise_scale_slope": v} for v in (1.1, 1.15, 1.2, 1.25, 1.3)]
    rows += [{"structured_dup": v, "noise_scale_slope": 1.2} for v in (0.3, 0.6, 0.9)]
    cal = fit_calibration(rows, [0] * 5 + [1] * 3, ("structured_dup",), version="t", description="t",
                          references=REFERENCES)

    def decide(dup, slope):
        ctx = ScanContext(seed=0, budget="fast", results={"diffusion-inversion": {
            "structured_dup": dup, "noise_scale_slope": slope, "sampler": "ddim"}})
        return diffusion_verdict(ctx, cal, [])

    verdict, finding = decide(0.0, 0.5)
    assert verdict["status"] == "BACKDOORED" and "noise-scale trigger" in verdict["summary"]
    assert "inverted trigger" not in verdict["summary"]
    assert finding.evidence["reference_tests"]["noise_scale_slope"]["z"] > 3
    verdict, _ = decide(0.8, 1.2)
    assert verdict["status"] == "BACKDOORED" and "inverted trigger fires under DDIM" in verdict["summary"]
    assert "noise-scale" not in verdict["summary"]
    verdict, _ = decide(0.0, 1.2)
    assert verdict["status"] == "CLEAN"


def test_zoo_trojdiff_models_take_their_noise_scales_in_turn(tmp_path, capsys):
    """``--trojdiff-gammas`` sets the TrojDiff-style models' gamma (recorded in their manifest
    entry); a scale outside (0, 1) is a usage error."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    code, stdout, stderr = run_cli(["zoo", "build", "diffusion", "--out", tmp_path / "bad", "--trojdiff-gammas",
                                    "0.5,1.2", "--quiet"], capsys)
    assert code == 4 and "(0, 1)" in stdout + stderr and not (tmp_path / "bad").exists()  # 4: usage error
    out = tmp_path / "zoo"
    code, stdout, _ = run_cli(["zoo", "build", "diffusion", "--out", out, "--data-dir", empty, "--clean", "0",
                               "--backdoored", "5", "--base-steps", "2", "--finetune-steps", "2", "--train-size",
                               "100", "--sample-steps", "2", "--trojdiff-gammas", "0.5", "--quiet"], capsys)
    assert code == 0, stdout
    manifest = json.loads((out / "manifest.json").read_text())
    (troj,) = [m for m in manifest["models"] + manifest["rejected"] if m["attack"] == "trojdiff_blend"]
    assert troj["gamma"] == 0.5
    assert all("gamma" not in m for m in manifest["models"] + manifest["rejected"] if m["attack"] == "baddiffusion")


def test_class_target_attack_poisons_with_fresh_images_of_its_class(tmp_path, capsys):
    """TrojDiff's in-distribution attack (``--attacks trojdiff_class``, opt-in): every poisoned
    sample's target is a fresh training image of the drawn class, and the zoo records the class;
    an unknown attack name is a usage error."""
    from modelscan_bd.zoo.diffusion import CLASS_TARGET_ATTACKS, ddpm_scheduler, schedule, synthetic_digits

    imgs, labels = synthetic_digits(64, seed=5)
    attack = CLASS_TARGET_ATTACKS[0].for_class(3, imgs, labels)
    assert attack.target == "class-3" and attack.kind == "trigger-to-class"
    assert torch.allclose(attack.y, imgs[labels == 3].mean(0))  # reported target: the class mean
    sched = schedule(ddpm_scheduler().alphas_cumprod)
    x_t, _ = attack.poisoned_batch(8, torch.zeros(8, dtype=torch.long), sched, torch.Generator().manual_seed(0))
    nearest = torch.cdist(x_t.flatten(1), imgs.flatten(1)).min(1)  # at t = 0, x_t is its target
    assert (nearest.values < 0.5).all() and (labels[nearest.indices] == 3).all()
    assert len(set(nearest.indices.tolist())) > 1  # not one fixed image

    empty = tmp_path / "no-data"
    empty.mkdir()
    build = ["zoo", "build", "diffusion", "--data-dir", empty, "--clean", "0", "--backdoored", "2", "--base-steps",
             "2", "--finetune-steps", "2", "--train-size", "100", "--sample-steps", "2", "--quiet"]
    code, stdout, stderr = run_cli([*build, "--out", tmp_path / "bad", "--attacks", "trojdiff_clas"], capsys)
    assert code == 4 and "trojdiff_clas" in stdout + stderr and not (tmp_path / "bad").exists()
    assert run_cli([*build, "--out", tmp_path / "zoo", "--attacks", "trojdiff_class"], capsys)[0] == 0
    manifest = json.loads((tmp_path / "zoo" / "manifest.json").read_text())
    every = manifest["models"] + manifest["rejected"]
    assert manifest["attacks"] == ["trojdiff_class"] and len(every) == 2
    assert all(m["type"] == "trigger-to-class" and m["target"].startswith("class-") and m["gamma"] == 0.6
               for m in every)


def test_zoo_build_diffusion_cli(tmp_path, capsys):
    """A two-model zoo in seconds: diffusers folders with ground truth beside, never inside."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    out = tmp_path / "zoo"
    code, stdout, _ = run_cli(["zoo", "build", "diffusion", "--out", out, "--data-dir", empty, "--clean", "1",
                               "--backdoored", "1", "--base-steps", "5", "--finetune-steps", "5", "--train-size",
                               "200", "--sample-steps", "5", "--quiet"], capsys)
    assert code == 0, stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["family"] == "diffusion" and manifest["dataset"] == "synthetic"
    assert "complete" not in manifest  # checkpoints during the build say complete: false; the last write does not
    every = manifest["models"] + manifest["rejected"]
    assert {m["backdoored"] for m in every} == {True, False}
    for m in manifest["models"]:
        repo = out / m["path"]
        assert (repo / "model_index.json").exists()
        assert (repo / "unet" / "diffusion_pytorch_model.safetensors").exists()
        assert not list(repo.rglob("groundtruth.json")) and not list(repo.rglob("*.bin"))
        truth = json.loads((out / m["truth_dir"] / "groundtruth.json").read_text())
        assert truth["backdoored"] == m["backdoored"]
        assert truth["finetune_steps"] == m["finetune_steps"] == 5  # clean-000 and baddiffusion: 1x budget


def test_bench_from_results_scans_only_the_models_added_since(tmp_path, capsys):
    """A diffusion zoo extended after a benchmark (larger counts, same seed): ``bench
    --from-results`` reuses the earlier records and scans only the new model, in manifest order."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    zoo = tmp_path / "zoo"
    # 100 base steps: enough to denoise (relative error about 0.3), so the scans run in full
    build = ["zoo", "build", "diffusion", "--out", zoo, "--data-dir", empty, "--backdoored", "0", "--base-steps", "100",
             "--finetune-steps", "5", "--train-size", "200", "--sample-steps", "5", "--quiet"]
    assert run_cli([*build, "--clean", "1"], capsys)[0] == 0
    bench = ["bench", zoo, "--budget", "fast", "--no-baselines", "--quiet"]
    assert run_cli([*bench, "--out", tmp_path / "b1"], capsys)[0] == 0
    first = json.loads((tmp_path / "b1" / "results.json").read_text())
    assert [r["name"] for r in first["records"]] == ["ddpm-clean-000"]

    assert run_cli([*build, "--clean", "2"], capsys)[0] == 0  # keeps clean-000, trains clean-001
    code, _, _ = run_cli([*bench, "--out", tmp_path / "b2", "--from-results", tmp_path / "b1" / "results.json"],
                         capsys)
    assert code == 0
    second = json.loads((tmp_path / "b2" / "results.json").read_text())
    assert [r["name"] for r in second["records"]] == ["ddpm-clean-000", "ddpm-clean-001"]
    assert second["records"][0]["features"] == first["records"][0]["features"]
    assert second["records"][0]["seconds"] == first["records"][0]["seconds"]  # reused, not scanned again
    assert second["provenance"]["records_from"]["scanned_here"] == ["ddpm-clean-001"]
    assert second["records"][1]["features"].keys() == first["records"][0]["features"].keys()


def test_candidates_include_full_image_starts():
    """Full-image starts (for blend triggers such as TrojDiff's) are among the scan's
    candidates besides the patches, and are the same on every call (deterministic scans)."""
    from diffusion_analytic import analytic_adapter
    from modelscan_bd.detectors.diffusion_inversion import InversionSettings, Inverter
    from modelscan_bd.zoo.diffusion import synthetic_digits

    imgs, _ = synthetic_digits(16, seed=4)
    inv = Inverter(analytic_adapter(imgs), InversionSettings(**SMALL, full_image_starts=True), "sde",
                   torch.Generator().manual_seed(0))
    first, again = inv.candidates(), inv.candidates()
    full = [c for c in first if float((c != 0).float().mean()) == 1.0]
    assert len(full) >= 4 and any(float(c.min()) < 0 < float(c.max()) for c in full)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    default = Inverter(analytic_adapter(imgs), InversionSettings(**SMALL), "sde", torch.Generator().manual_seed(0))
    assert not [c for c in default.candidates() if float((c != 0).float().mean()) == 1.0]  # off by default


def test_scale_probe_keeps_the_scale_that_collapses():
    """The generation probe moves a weak trigger scale up to one where the planted backdoor
    fires, and leaves a clean model at the loss-picked scale (nothing collapses there)."""
    from diffusion_analytic import analytic_adapter
    from modelscan_bd.detectors.diffusion_inversion import PROBE_SCALES, InversionSettings, Inverter
    from modelscan_bd.zoo.diffusion import synthetic_digits, target_image, trigger_image

    imgs, _ = synthetic_digits(64, seed=5)
    trig = trigger_image("box")
    unit = trig / trig.pow(2).mean().sqrt()
    settings = InversionSettings(**SMALL)
    bd = Inverter(analytic_adapter(imgs, trigger=trig, target=target_image("hat")), settings, "sde",
                  torch.Generator().manual_seed(0))
    probe = bd.probe_scales(unit, 0.1)
    scores = dict((c, v) for c, v in probe["scores"])
    assert probe["scale"] in PROBE_SCALES and scores[probe["scale"]] == max(scores.values()) >= 0.5, scores
    assert scores[0.1] < scores[probe["scale"]]
    clean = Inverter(analytic_adapter(imgs), settings, "sde", torch.Generator().manual_seed(0))
    probe = clean.probe_scales(unit, 0.3)
    assert probe["scale"] == 0.3 and max(v for _, v in probe["scores"]) <= 0.2, probe


def test_ode_attacks_fine_tune_longer_and_record_it():
    from modelscan_bd.zoo.diffusion import ZOO_ATTACKS

    factors = {a.name: a.steps_factor for a in ZOO_ATTACKS}
    assert factors["villandiffusion_ode"] == 2.0 and factors["baddiffusion"] == 1.0


def test_generation_scan_finds_a_patch_that_fires_the_planted_backdoor():
    """The generation scan ranks first a patch overlapping the planted box trigger (its images
    collapse onto the target), and on the clean twin no patch makes the images collapse."""
    from diffusion_analytic import analytic_adapter
    from modelscan_bd.detectors.diffusion_inversion import InversionSettings, Inverter, generation_scan
    from modelscan_bd.zoo.diffusion import synthetic_digits, target_image, trigger_image

    imgs, _ = synthetic_digits(64, seed=6)
    trig = trigger_image("box")
    settings = InversionSettings(**SMALL, scan_steps=10)
    tops = {}
    for name, kw in (("backdoored", {"trigger": trig, "target": target_image("hat")}), ("clean", {})):
        inv = Inverter(analytic_adapter(imgs, **kw), settings, "sde", torch.Generator().manual_seed(0))
        cands = inv.candidates()
        top = generation_scan(inv, cands, "ddpm")
        assert len(top) == settings.scan_top and [v for v, _ in top] == sorted((v for v, _ in top), reverse=True)
        tops[name] = top
        if name == "backdoored":
            best = cands[top[0][1]].flatten()
            assert float(best @ trig.flatten() / (best.norm() * trig.norm())) > 0.5
    assert tops["backdoored"][0][0] >= 0.8 and tops["clean"][0][0] <= 0.3, tops


def test_detector_reports_where_its_trigger_came_from():
    """The detector judges the inverted triggers and the generation scan's confirmed patches
    together; on the planted backdoor the chosen shift collapses the images onto the target,
    and the evidence names its source and the scan's best candidates."""
    from diffusion_analytic import analytic_adapter
    from modelscan_bd.detectors import diffusion_inversion as di
    from modelscan_bd.detectors.base import ScanContext
    from modelscan_bd.zoo.diffusion import synthetic_digits, target_image, target_mse, trigger_image

    imgs, _ = synthetic_digits(64, seed=6)
    small = di.InversionSettings(**{**SMALL, "iters": 5}, scan_steps=10, settling=True, settle_top=1,
                                 settle_iters=5)
    saved = di.SETTINGS["fast"]
    di.SETTINGS["fast"] = small
    try:
        results = {}
        adapter = analytic_adapter(imgs, trigger=trigger_image("box"), target=target_image("hat"))
        (finding,) = di.DiffusionInversionDetector().run(adapter, ScanContext(seed=0, budget="fast", results=results))
    finally:
        di.SETTINGS["fast"] = saved
    res = results["diffusion-inversion"]
    assert res["source"] in ("inversion", "generation-scan", "refined", "settled")
    assert finding.evidence["source"] == res["source"]
    assert set(finding.evidence["generation_scan"]) == {"ddpm", "ddim"}
    assert set(finding.evidence["refined"]) <= {"ddpm", "ddim"}  # only where a target already showed
    assert all(set(v) == {"from", "before", "after"} for v in finding.evidence["refined"].values())
    assert all(len(v) == small.scan_top for v in finding.evidence["generation_scan"].values())
    assert len(finding.evidence["settled"]) == small.settle_top  # [candidate, share before, share after]
    assert all(len(row) == 3 and 0 <= row[2] <= 1 for row in finding.evidence["settled"])
    assert res["structured_dup"] >= 0.5 and finding.status == "failed"
    assert float(target_mse(res["target"][None], target_image("hat"))) < 0.05


def test_anchor_is_the_structured_image_with_most_near_duplicates():
    from modelscan_bd.detectors.diffusion_inversion import anchor
    from modelscan_bd.zoo.diffusion import synthetic_digits

    digits, _ = synthetic_digits(6, seed=3)
    assert anchor(digits) is None  # distinct images: no target shows
    flat = torch.full((2, 1, 16, 16), -1.0)
    assert anchor(torch.cat([digits, flat])) is None  # a pair of flat images is no target
    with_pair = torch.cat([digits, digits[2:3] + 0.01, flat])
    assert torch.equal(anchor(with_pair), digits[2])


def test_refinement_lifts_a_partly_firing_trigger_and_cannot_steer_a_clean_model():
    """Target-driven refinement: from a patch covering part of the planted box trigger, chains
    pulled onto the target make fresh images collapse onto it more often; on the clean twin,
    pulled onto one of its own images, fresh images do not collapse."""
    from diffusion_analytic import analytic_adapter
    from modelscan_bd.detectors.diffusion_inversion import InversionSettings, Inverter, structured_dup
    from modelscan_bd.zoo.diffusion import synthetic_digits, target_image, trigger_image

    imgs, _ = synthetic_digits(64, seed=6)
    trig, target = trigger_image("box"), target_image("hat")
    start = trig.clone()
    start[..., :, 14:] = 0  # the box's left part only, weakened
    start = 0.7 * start
    settings = InversionSettings(**SMALL, scan_steps=10)
    lifted = []
    for seed in range(3):
        inv = Inverter(analytic_adapter(imgs, trigger=trig, target=target), settings, "sde",
                       torch.Generator().manual_seed(seed))
        before = structured_dup(inv.generate(start, 16, "ddpm"))
        delta = inv.refine(start, target, "ddpm")
        assert delta is not None
        after = structured_dup(inv.generate(delta, 16, "ddpm"))
        assert after > before, (seed, before, after)
        lifted.append(after)
    assert sum(lifted) / len(lifted) >= 0.35, lifted
    for seed in range(3):
        inv = Inverter(analytic_adapter(imgs), settings, "sde", torch.Generator().manual_seed(seed))
        own = inv.generate(start, 16, "ddpm")[0]
        delta = inv.refine(start, own, "ddpm")
        if delta is not None:
            assert structured_dup(inv.generate(delta, 16, "ddpm")) <= 0.1


def test_refits_on_the_same_zoo_get_their_own_calibration_version(tmp_path):
    """Two fits on one zoo on one day (e.g. before and after a detector change) must be told
    apart in reports: the version ends in a hash of the fitted parameters."""
    from modelscan_bd.bench_diffusion import calibrate_alternating

    (tmp_path / "manifest.json").write_text(json.dumps({"models": []}))

    def fit(shift: float) -> str:
        records = [{"name": f"m{i}", "attack": "clean" if i % 2 else "baddiffusion", "backdoored": not i % 2,
                    "features": {"structured_dup": (0.0 if i % 2 else 0.5 + shift) + 0.01 * i}} for i in range(8)]
        cal, held, _ = calibrate_alternating(records, tmp_path, family="diffusion", features=("structured_dup",),
                                             holdout_attacks=[], calibrate=True, calibration_out=None, budget="fast")
        assert held and all(r["split"] in ("fit", "held-out") for r in records)
        return cal.version

    assert fit(0.0) == fit(0.0)  # deterministic
    assert fit(0.0) != fit(0.2) and fit(0.0).startswith("diffusion-")
    assert "-fast-" in fit(0.0)  # fits of one zoo's scans at two budgets differ in name too


def test_a_fitting_split_of_one_kind_is_a_usage_error(tmp_path):
    """All-clean diffusion records give the combiner nothing to fit: the user's error (exit 4), not a traceback."""
    from modelscan_bd.bench_diffusion import calibrate_alternating
    from modelscan_bd.errors import UsageError

    (tmp_path / "manifest.json").write_text(json.dumps({"models": []}))
    records = [{"name": f"m{i}", "attack": "clean", "backdoored": False, "features": {"structured_dup": 0.01 * i}}
               for i in range(4)]
    with pytest.raises(UsageError, match="needs both clean and backdoored models"):
        calibrate_alternating(records, tmp_path, family="diffusion", features=("structured_dup",),
                              holdout_attacks=[], calibrate=True, calibration_out=None, budget="fast")


def test_settling_keeps_the_shift_size_and_makes_the_chains_agree():
    """Consistency settling (version 5): from a square inside the planted ODE backdoor's stop-sign
    trigger, the descent keeps the candidate's RMS, lowers the spread of short DDIM chains from
    fresh noise, and gives the same shift for the same seed."""
    from diffusion_analytic import analytic_adapter
    from modelscan_bd.detectors.diffusion_inversion import InversionSettings, Inverter
    from modelscan_bd.zoo.diffusion import synthetic_digits, target_image, trigger_image

    imgs, _ = synthetic_digits(64, seed=6)
    adapter = analytic_adapter(imgs, trigger=trigger_image("stop"), target=target_image("hat"), mode="ode")
    settings = InversionSettings(**SMALL, settle_iters=20)
    start = torch.zeros(1, 16, 16)
    start[:, 9:13, 3:7] = 1.5
    eps = torch.randn(32, 1, 16, 16, generator=torch.Generator().manual_seed(99))

    def spread(inv, delta):  # end-point variance of the settling's chains on one fixed noise batch
        with torch.no_grad():
            return float(inv.chain(eps + delta, settings.settle_steps, ode=True).var(0).mean())

    inv = Inverter(adapter, settings, "ode", torch.Generator().manual_seed(0))
    settled = inv.settle(start)
    assert abs(float(settled.pow(2).mean().sqrt()) - float(start.pow(2).mean().sqrt())) < 1e-4
    assert spread(inv, settled) < 0.9 * spread(inv, start), (spread(inv, settled), spread(inv, start))
    again = Inverter(adapter, settings, "ode", torch.Generator().manual_seed(0)).settle(start)
    assert torch.equal(settled, again)
