"""The merge gate's benchmark end to end through the CLI: a tiny merging zoo built here,
benched as a fitting zoo (``bench --calibrate``), its merging calibration fitted on rows
labelled by the real attack success the bench measured."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bench_on_a_merging_zoo_fits_the_merging_calibration_from_measured_attack_success(tmp_path, capsys):
    from modelscan_bd.verdict import load_calibration

    zoo = tmp_path / "zoo"
    code, _, err = run_cli(["zoo", "build", "merging", "--data", "synthetic", "--out", zoo, "--clean", "3",
                            "--backdoored", "1", "--train-size", "1500", "--epochs", "2", "--quiet"], capsys)
    assert code == 0, err
    manifest = json.loads((zoo / "manifest.json").read_text())
    assert [m["name"] for m in manifest["models"] if m.get("backdoored")] == ["badnets-00"], manifest["rejected"]
    out, cal_file = tmp_path / "bench", tmp_path / "merging.json"
    # The zoo trains on one thread (what it learns depends on the thread count); the bench takes
    # two, alone on 2 cores 175 s against 240 s (the fixture restores the count afterwards).
    code, stdout, err = run_cli(["--threads", "2", "bench", zoo, "--budget", "fast", "--calibrate",
                                 "--calibration-out", cal_file, "--out", out, "--quiet"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "fit-rows.jsonl").read_text().splitlines()]
    items = [r["item"] for r in rows]
    # 3 groups (the backdoored candidate with two clean peers, two clean-only groups): each
    # candidate's variant once, task-arithmetic and TIES merges; DARE's expected merge is
    # the task-arithmetic one, so it is not counted again.
    assert len(items) == len(set(items)) and not any(i.startswith("dare") for i in items)
    assert sum(i.startswith("task_arithmetic merge") for i in items) <= 3 and any(i.startswith("ties") for i in items)
    variant = next(r for r in rows if r["item"] == "badnets-00 amplify")
    assert variant["asr"] >= 0.9  # amplifying a BadNets task vector keeps its backdoor: measured, not assumed
    assert all(r["asr"] is None for r in rows if r["item"].startswith("clean"))
    assert all(r["asr"] is None for r in rows if "merge of" in r["item"] and "badnets-00" not in r["item"])
    fitted = load_calibration(str(cal_file))
    result = json.loads((out / "results.json").read_text())
    assert fitted.version.startswith("merging-") and result["fitted_calibration"]["version"] == fitted.version
    assert result["fitted_calibration"]["fitting_rows"]["rows"] == len(rows)
    assert "fitting zoo" in (out / "results.md").read_text() and "fitting zoo" in stdout
