"""The zoo builder and the benchmark, end to end through the CLI on a tiny synthetic zoo."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import run_cli
from modelscan_bd.bench import auroc, keep_class_entries, log_loss, mask_iou, recovered_trigger, tpr_at_fpr
from modelscan_bd.verdict import load_calibration


def fast_scans(zoo, capsys):
    """The folder of the first bench test's `fast` scans of ``zoo``, scanned here when a test runs alone."""
    out = zoo / "bench-fast"
    if not (out / "results.json").exists():
        assert run_cli(["bench", zoo, "--out", out, "--budget", "fast", "--quiet"], capsys)[0] == 0
    return out


def test_auroc_and_tpr_at_fpr():
    assert auroc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    assert auroc([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0]) == 0.0
    assert auroc([0.5, 0.5], [1, 0]) == 0.5
    assert auroc([0.5], [1]) is None
    assert tpr_at_fpr([0.9, 0.6, 0.7, 0.1], [1, 1, 0, 0]) == 0.5
    assert log_loss([0.5, 0.5], [1, 0]) == pytest.approx(np.log(2))


def test_mask_iou():
    truth = np.zeros((8, 8))
    truth[5:8, 5:8] = 1
    rec = torch.zeros(1, 8, 8)
    rec[0, 5:8, 5:8] = 0.9
    assert mask_iou(rec, truth) == 1.0
    rec2 = torch.zeros(1, 8, 8)
    rec2[0, 0:3, 0:3] = 0.9
    assert mask_iou(rec2, truth) == 0.0


def test_recovered_trigger_of_an_all_to_all_model_is_label_maps_on_the_true_map():
    true_mask = np.zeros((4, 4))
    true_mask[0, 0] = 1.0
    on_patch, off_patch = np.array([[1.0, 0, 0, 0]] + [[0.0] * 4] * 3), np.array([[0.0] * 4] * 3 + [[0, 0, 0, 1.0]])
    results = {"trigger-recovery": {"label": 2, "holdout_success": 0.97, "patch_mask": off_patch},
               # 10 held-out images: 6 go to their own destination (y + 1), 3 to a sink, 1 stays
               "label-map": {"pairs": [[0, 1, 4], [1, 2, 2], [2, 1, 3]], "images": 10, "patch_mask": on_patch}}
    a2a = {"type": "all-to-all", "target_map": [1, 2, 0]}
    assert recovered_trigger(results, a2a, true_mask) == ("label-map", 0.6, 1.0)
    # an all-to-one model, or an all-to-all one that label-map did not run on, keeps trigger-recovery's
    assert recovered_trigger(results, {"type": "all-to-one", "target": 2}, true_mask) == ("trigger-recovery", 0.97, 0.0)
    assert recovered_trigger({"trigger-recovery": results["trigger-recovery"]}, a2a, true_mask)[0] == "trigger-recovery"
    assert recovered_trigger({}, a2a, None) == (None, None, None)


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    import sys

    out = tmp_path_factory.mktemp("zoo")
    from modelscan_bd.cli import main

    argv = ["modelscan-bd", "zoo", "build", "classifiers", "--data", "synthetic", "--out", str(out), "--clean", "2",
            "--backdoored", "2", "--hard", "1", "--attacks", "badnets", "--train-size", "1500", "--epochs", "5",
            "--image-size", "16", "--quiet"]
    old, sys.argv = sys.argv, argv
    try:
        with pytest.raises(SystemExit) as exc:
            main()
    finally:
        sys.argv = old
    assert exc.value.code == 0
    return out


def test_zoo_layout_keeps_answers_out_of_repos(tiny_zoo):
    manifest = json.loads((tiny_zoo / "manifest.json").read_text())
    assert len(manifest["models"]) + len(manifest["rejected"]) == 5
    for m in manifest["models"]:
        repo = tiny_zoo / m["path"]
        assert {p.name for p in repo.iterdir()} == {"config.json", "model.safetensors", "preprocessor_config.json"}
        size = json.loads((repo / "preprocessor_config.json").read_text())["size"]
        assert size == {"height": 16, "width": 16}  # --image-size
        assert (tiny_zoo / m["truth_dir"] / "groundtruth.json").is_file()
    assert (tiny_zoo / "clean-data.npz").is_file()


def test_bench_scans_zoo_and_calibrates_on_a_split(tiny_zoo, tmp_path, capsys):
    out = tiny_zoo / "bench-fast"  # the next test reuses these scans
    code, stdout, _ = run_cli(["bench", tiny_zoo, "--out", out, "--budget", "fast", "--quiet"], capsys)
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    m = result["metrics"]
    assert m["models"] == len(result["records"]) and m["auroc"] is not None
    assert {"neural_cleanse", "ebyd_variance"} <= set(m) and m["seconds_per_model"] > 0
    assert "zoo_manifest_sha256" in result["provenance"] and (out / "results.md").read_text().startswith("# Benchmark")
    badnets = [r for r in result["records"] if r["attack"] == "badnets"]
    assert len(badnets) == 2 and all(r["trigger_iou"] is not None for r in badnets)
    # every label a detector named is recorded, so a target rule can be replayed on the records
    assert all(isinstance(r["collapse_label"], int) and isinstance(r["mmbd_label"], int) for r in result["records"])
    assert all(r["trigger_starts"] == 1 for r in result["records"])  # fast: one inversion start

    assert result["provenance"]["budget"] == "fast"

    # Records of another budget are never mixed into a fit: one-line usage error.
    code, _, stderr = run_cli(["bench", tiny_zoo, "--out", tmp_path / "b1", "--from-results", out / "results.json",
                               "--calibrate", "--quiet"], capsys)
    assert code == 4 and "budget fast" in stderr and not (tmp_path / "b1").exists()

    # A model added to the zoo since the earlier run (here: dropped from its records) is scanned;
    # the others' records are reused as they are.
    earlier = json.loads((out / "results.json").read_text())
    k = next(i for i, r in enumerate(earlier["records"]) if r["name"].startswith("resnet-hard"))
    dropped = earlier["records"].pop(k)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(earlier))
    cal = tmp_path / "cal.json"
    code, stdout, _ = run_cli(["bench", tiny_zoo, "--out", tmp_path / "b2", "--from-results", partial, "--budget",
                               "fast", "--calibrate", "--holdout-seeds", "1", "--calibration-out", cal, "--quiet"],
                              capsys)
    assert code == 0
    fitted = json.loads(cal.read_text())
    assert fitted["provisional"] is False and len(fitted["weights"]) == len(fitted["features"])
    assert fitted["budget"] == "fast" and fitted["version"].endswith("-fast")  # one zoo's fits per budget differ
    # the shipped entries for more classes than this zoo's are kept, with their own cuts and combiners
    shipped = load_calibration(budget="fast").class_cuts
    classes = json.loads((tiny_zoo / "manifest.json").read_text())["num_classes"]
    assert fitted["class_cuts"] == [c for c in shipped if c["min_classes"] > classes] != []
    evaluated = json.loads((tmp_path / "b2" / "results.json").read_text())
    assert "held-out" in evaluated["split"]
    assert evaluated["provenance"]["records_from"]["scanned_here"] == [dropped["name"]]
    assert [r["name"] for r in evaluated["records"]] == [r["name"] for r in result["records"]]
    assert evaluated["records"][:k] + evaluated["records"][k + 1:] == earlier["records"]
    assert evaluated["records"][k]["features"].keys() == dropped["features"].keys()
    # hard clean models are always in the evaluated split, never fitted on
    assert evaluated["metrics"]["hard_clean_fpr"] is not None


def fit_without_and_with(zoo, out, tmp_path, capsys, option):
    """Fit the tiny zoo's `fast` records twice, into b1 without and b2 with ``option`` naming the same
    records again; return both calibrations and both results."""
    common = ["--from-results", out / "results.json", "--budget", "fast", "--calibrate", "--holdout-seeds", "1",
              "--quiet"]
    assert run_cli(["bench", zoo, "--out", tmp_path / "b1", *common, "--calibration-out", tmp_path / "cal1.json"],
                   capsys)[0] == 0
    assert run_cli(["bench", zoo, "--out", tmp_path / "b2", *common, "--calibration-out", tmp_path / "cal2.json",
                    option, out / "results.json"], capsys)[0] == 0
    return [json.loads(f.read_text()) for f in (tmp_path / "cal1.json", tmp_path / "cal2.json",
                                                tmp_path / "b1" / "results.json", tmp_path / "b2" / "results.json")]


def assert_usage_errors(zoo, out, tmp_path, capsys, option, *more):
    """``option`` (a classifier-only --calibrate option taking a results.json) is refused before any
    scan, in one line with exit 4: without --calibrate, with records of another budget, on another
    family's zoo; ``more`` are further (args, message) cases."""
    cases = (([option, out / "results.json"], f"{option} needs --calibrate"),
             (["--calibrate", option, out / "results.json"], "budget fast, not standard"), *more)
    for args, message in cases:
        code, _, stderr = run_cli(["bench", zoo, "--out", tmp_path / "b3", *args, "--quiet"], capsys)
        assert code == 4 and message in stderr and not (tmp_path / "b3").exists()
    other = tmp_path / "diffusion-zoo"  # another family's zoo: refused before its models are read
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"family": "diffusion", "models": []}))
    code, _, stderr = run_cli(["bench", other, "--out", tmp_path / "b5", "--calibrate", option, out / "results.json",
                               "--quiet"], capsys)
    assert code == 4 and f"{option} is for classifier zoos, not a diffusion zoo" in stderr


def test_bench_other_recipes_set_the_threshold_not_the_weights(tiny_zoo, tmp_path, capsys):
    out = fast_scans(tiny_zoo, capsys)
    records = json.loads((out / "results.json").read_text())["records"]
    # The other recipe's zoo (here the same records again): its clean models join the threshold only.
    c1, c2, _, b2 = fit_without_and_with(tiny_zoo, out, tmp_path, capsys, "--other-recipes")
    assert c2["weights"] == c1["weights"] and c2["suspicious_threshold"] == c1["backdoored_threshold"]
    assert c2["backdoored_threshold"] >= c1["backdoored_threshold"]
    other_clean = [r for r in records if not r["hard"] and not r["backdoored"]]
    assert f"also from {len(other_clean)} clean models of 1 zoos" in c2["description"]
    assert f"threshold also from {len(other_clean)} clean models of" in b2["split"]
    assert [r["name"] for r in b2["records"]] == [r["name"] for r in records]
    # --fit-rows (merging zoos only) is refused here too
    assert_usage_errors(tiny_zoo, out, tmp_path, capsys, "--other-recipes",
                        (["--calibrate", "--fit-rows", out / "results.json"], "--fit-rows is for merging zoos"))


def test_bench_fit_results_join_another_zoos_records_to_the_fit(tiny_zoo, tmp_path, capsys):
    """--fit-results: another zoo's records (here the same zoo's, a second time) join the fitting
    split under the same hold-out rules; the evaluated split and the records reported stay this zoo's."""
    out = fast_scans(tiny_zoo, capsys)
    records = json.loads((out / "results.json").read_text())["records"]
    c1, c2, b1, b2 = fit_without_and_with(tiny_zoo, out, tmp_path, capsys, "--fit-results")
    fitting = [r for r in records if r.get("seed") != 1 and not r["hard"]]
    assert f"fitted on {2 * len(fitting)} models" in c2["description"] and f"{len(fitting)} of " in c2["description"]
    assert "-joined-" in c2["version"] and c2["version"].startswith(c1["version"])
    assert c2["weights"] != c1["weights"]  # the L2 penalty is fixed, so twice the rows fit differently
    assert f"and {len(fitting)} models of" in b2["split"]
    assert b2["metrics"]["models"] == b1["metrics"]["models"]
    assert [r["name"] for r in b2["records"]] == [r["name"] for r in records]
    assert_usage_errors(tiny_zoo, out, tmp_path, capsys, "--fit-results")


def test_bench_pool_judges_several_runs_as_each_run_judged_itself(tiny_zoo, tmp_path, capsys):
    out = fast_scans(tiny_zoo, capsys)
    run = json.loads((out / "results.json").read_text())
    classes = json.loads((tiny_zoo / "manifest.json").read_text())["num_classes"]
    assert all(r["num_classes"] == classes for r in run["records"])
    # A second zoo's run: the same records under another zoo (another manifest), without class counts,
    # as bench runs before they were recorded.
    other = {**run, "provenance": {**run["provenance"], "zoo": "/z/older", "zoo_manifest_sha256": "0" * 16},
             "records": [{k: v for k, v in r.items() if k != "num_classes"} for r in run["records"]]}
    older = tmp_path / "older.json"
    older.write_text(json.dumps(other))

    code, stdout, stderr = run_cli(["bench-pool", out / "results.json", "--out", tmp_path / "p1"], capsys)
    assert code == 0, stderr
    alone = json.loads((tmp_path / "p1" / "results.json").read_text())
    for k in ("auroc", "tpr", "fpr", "tpr_at_5fpr", "target_accuracy"):  # one run pooled = its own bench
        assert alone["metrics"][k] == run["metrics"][k], k
    assert alone["provenance"]["budget"] == "fast" and stdout.startswith("# Pooled benchmark")

    code, _, stderr = run_cli(["bench-pool", out / "results.json", older, "--out", tmp_path / "p2"], capsys)
    assert code == 4 and "pass --classes" in stderr and not (tmp_path / "p2").exists()
    code, stdout, _ = run_cli(["bench-pool", out / "results.json", older, "--classes", str(classes), "--without",
                               "mmbd_neglog10_p", "--out", tmp_path / "p2"], capsys)
    assert code == 0
    both = json.loads((tmp_path / "p2" / "results.json").read_text())
    n = len(run["records"])
    assert both["metrics"]["models"] == 2 * n and len({r["name"] for r in both["records"]}) == 2 * n
    assert both["metrics"]["auroc"] == run["metrics"]["auroc"]  # each model twice: the same ranking
    assert [r["p"] for r in both["per_model"][:n]] == [r["p"] for r in both["per_model"][n:]]
    assert both["metrics_without"] is not None and "without mmbd_neglog10_p" in stdout
    assert all("p_without" in r for r in both["per_model"])

    for args, message in (([out / "results.json", out / "results.json"], "pooled twice"),
                          ([out / "results.json", "--budget", "standard"], "budget fast, not standard"),
                          ([out / "results.json", "--without", "no_such_feature"], "no record has the feature")):
        code, _, stderr = run_cli(["bench-pool", *args, "--out", tmp_path / "p3"], capsys)
        assert code == 4 and message in stderr and not (tmp_path / "p3").exists(), stderr


def test_bench_cuts_only_without_a_class_count_is_a_usage_error_before_any_scan(tmp_path, capsys):
    zoo = tmp_path / "old-zoo"  # a manifest from before zoos recorded num_classes
    zoo.mkdir()
    (zoo / "manifest.json").write_text(json.dumps({"models": [{"name": "m", "path": "missing"}]}))
    code, _, stderr = run_cli(["bench", zoo, "--out", tmp_path / "b", "--calibrate", "--cuts-only", "--quiet"], capsys)
    assert code == 4 and "does not record num_classes" in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_bench_cuts_only_fits_the_class_count_cuts_and_the_scan_uses_them(tiny_zoo, tmp_path, capsys):
    from modelscan_bd.reports import validate_report
    from modelscan_bd.verdict import Calibration, load_calibration, probability

    out = fast_scans(tiny_zoo, capsys)
    classes = json.loads((tiny_zoo / "manifest.json").read_text())["num_classes"]
    cal_file = tmp_path / "cuts.json"
    code, _, err = run_cli(["bench", tiny_zoo, "--out", tmp_path / "b", "--from-results", out / "results.json",
                            "--budget", "fast", "--calibrate", "--cuts-only", "--holdout-seeds", "1",
                            "--calibration-out", cal_file, "--quiet"], capsys)
    assert code == 0, err
    shipped, fitted = load_calibration(budget="fast"), Calibration(**json.loads(cal_file.read_text()))
    assert fitted.weights == shipped.weights and fitted.bias == shipped.bias  # the combiner is the shipped one
    assert fitted.version.startswith(f"{shipped.version}+cuts{classes}-")
    backdoored, suspicious, entry = fitted.cuts_for(classes)
    assert entry["min_classes"] == classes and suspicious <= backdoored <= shipped.backdoored_threshold
    result = json.loads((tmp_path / "b" / "results.json").read_text())
    assert f"only the cuts for {classes}-class models" in result["split"]
    held = [r for r in result["records"] if r["seed"] == 1 or r["hard"]]
    flagged = [probability(r["features"], fitted)[0] >= backdoored for r in held if not r["backdoored"]]
    assert result["metrics"]["fpr"] == (sum(flagged) / len(flagged) if flagged else None)
    # a scan with that file judges a model of that class count by those cuts, and says so
    model = next(m for m in json.loads((tiny_zoo / "manifest.json").read_text())["models"] if m["backdoored"])
    code, _, err = run_cli(["scan", tiny_zoo / model["path"], "--clean-data", tiny_zoo / "clean-data.npz",
                            "--budget", "fast", "--calibration", cal_file, "--out", tmp_path / "scan"], capsys)
    assert code in (0, 1), err
    report = json.loads((tmp_path / "scan" / "report.json").read_text())
    validate_report(report)
    verdict = next(f for f in report["findings"] if f["rule_id"] == "MSBD-V001")
    assert verdict["threshold"] == backdoored and verdict["evidence"]["class_cut"] == entry
    # every seed held out: nothing to fit on, a one-line usage error (exit 4) with nothing written
    seeds = ",".join(str(m["seed"]) for m in json.loads((tiny_zoo / "manifest.json").read_text())["models"])
    for extra, message in ((["--cuts-only"], "no clean models to fit the cuts on"),
                           ([], "needs both clean and backdoored models")):
        code, _, stderr = run_cli(["bench", tiny_zoo, "--out", tmp_path / "b5", "--from-results", out / "results.json",
                                   "--budget", "fast", "--calibrate", *extra, "--holdout-seeds", seeds, "--quiet"],
                                  capsys)
        assert code == 4 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert not (tmp_path / "b5").exists()
    # --cuts-only alone, or on another family's zoo: usage errors before any scan
    code, _, stderr = run_cli(["bench", tiny_zoo, "--out", tmp_path / "b3", "--cuts-only", "--quiet"], capsys)
    assert code == 4 and "--cuts-only needs --calibrate" in stderr and not (tmp_path / "b3").exists()
    other = tmp_path / "clip-zoo"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"family": "clip", "models": []}))
    code, _, stderr = run_cli(["bench", other, "--out", tmp_path / "b4", "--calibrate", "--cuts-only", "--quiet"],
                              capsys)
    assert code == 4 and "--cuts-only is for classifier zoos, not a clip zoo" in stderr


def test_bench_on_a_broken_zoo_is_a_one_line_error(tmp_path, capsys):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    manifest = zoo / "manifest.json"
    entry = {"name": "m", "path": "models/m", "truth_dir": "truth/m"}
    cases = ((None, "is missing"), ("{\"models\": [", "unreadable zoo file"), ("{}", "no list of models"),
             (json.dumps({"models": [entry]}), "groundtruth.json is missing"))
    for text, message in cases:
        if text is not None:
            manifest.write_text(text)
        code, _, stderr = run_cli(["bench", zoo, "--out", tmp_path / "out", "--no-baselines", "--quiet"], capsys)
        assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    # An earlier run's results that are not JSON, or not a bench's: the same kind of error.
    for text, message in (("{", "unreadable --from-results file"), ("[]", "not a bench results.json")):
        results = tmp_path / "results.json"
        results.write_text(text)
        code, _, stderr = run_cli(["bench", zoo, "--out", tmp_path / "out", "--from-results", results, "--quiet"],
                                  capsys)
        assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    # A merging zoo's extra fitting rows with a broken line: refused before any scan.
    manifest.write_text(json.dumps({"kind": "merging", "models": []}))
    rows = tmp_path / "fit-rows.jsonl"
    for text, message in (('{"item": "a"}\n{"item": \n', "line 2"),
                          ('{"item": "a"}\n[1]\n', "line 2: not a JSON object")):
        rows.write_text(text)
        code, _, stderr = run_cli(["bench", zoo, "--out", tmp_path / "out", "--calibrate", "--fit-rows", rows,
                                   "--quiet"], capsys)
        assert code == 2 and "unreadable --fit-rows file" in stderr and message in stderr, stderr
        assert len(stderr.strip().splitlines()) == 1, stderr


def test_refit_keeps_only_entries_for_larger_class_counts():
    shipped = load_calibration()
    smallest = min(c["min_classes"] for c in shipped.class_cuts)  # the shipped file has one (20+ classes)
    for classes, kept in ((10, shipped.class_cuts), (smallest, []), (None, [])):
        cal = keep_class_entries(load_calibration(), shipped, classes)
        assert cal.class_cuts == kept
        assert ("kept from calibration " + shipped.version in cal.description) == bool(kept)
