"""The ``modelscan-bd`` command line.

Exit codes (the contract with CI gates; the output format never changes them):
0 nothing at or above --fail-on, 1 findings at or above --fail-on, 2 error,
3 incomplete (unsupported family, pickle refused, detector skipped), 4 usage error.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import click

from .errors import EXIT_ERROR, EXIT_USAGE, ScanError
from .findings import SEVERITIES
from .progress import status_printer

FORMATS = ("json", "html", "sarif")


def _formats(value: str) -> list[str]:
    fmts = [f.strip() for f in value.split(",") if f.strip()]
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise click.BadParameter(f"unknown format(s) {', '.join(bad) or '(none)'}; choose from {', '.join(FORMATS)}")
    return fmts


def default_out(source: str) -> Path:
    name = re.sub(r"[^\w.\-]+", "_", source.rstrip("/").split("@")[0].split("/")[-1]) or "model"
    return Path("reports") / name


@click.group()
@click.version_option(package_name="modelscan-bd")
@click.option("--threads", type=click.IntRange(1, 1024), default=None, envvar="MODELSCAN_BD_THREADS",
              help="CPU threads for torch (default: torch's choice). On a shared machine 1 avoids oversubscription, "
                   "which can slow scans many times over.")
def cli(threads: int | None) -> None:
    """Scan models from the Hugging Face Hub (or local folders) for backdoors."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _read_prompts(path: str) -> list[str]:
    """One prompt per non-empty line, repeats dropped; the search compares the outputs of
    different prompts (from one shared noise), so it needs two or more different ones."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise click.UsageError(f"--prompts {path}: not a UTF-8 text file") from None
    prompts = list(dict.fromkeys(" ".join(line.split()) for line in lines if line.strip()))
    if len(prompts) < 2:
        raise click.UsageError(f"--prompts {path}: needs at least two different prompts, one per line "
                               f"(found {len(prompts)})")
    return prompts


@cli.command()
@click.argument("source")
@click.option("--clean-data", type=str, default=None,
              help="Image folder (class subfolders) or .npz of clean images; without it only data-free detectors run.")
@click.option("--clean-budget", type=click.IntRange(8, 100000), default=500, show_default=True,
              help="How many clean images to use.")
@click.option("--out", "out", type=str, default=None, help="Report folder (default ./reports/<name>/); '-' prints JSON.")
@click.option("--format", "fmt", default="json,html,sarif", show_default=True, help="Comma-separated: json,html,sarif.")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default="high", show_default=True,
              help="Exit 1 when a finding reaches this severity.")
@click.option("--budget", type=click.Choice(["fast", "standard", "thorough"]), default="standard", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--detectors", type=str, default=None, help="Comma-separated detector ids (default: all for the budget).")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Calibration file to use instead of the shipped one.")
@click.option("--labels", type=str, default=None,
              help="CLIP: comma-separated label set for the zero-shot view (default: CIFAR-10's classes).")
@click.option("--reference", type=str, default=None,
              help="CLIP: a clean base/reference model (org/name or folder); the verdict is relative to it.")
@click.option("--prompts", "prompts_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Text-to-image: a text file of clean prompts, one per line, that the trigger search inserts "
                   "candidate words into (default: built-in captions).")
@click.option("--budget-fallback/--no-budget-fallback", default=True, show_default=True,
              help="Classifiers: run the budget the calibration names for an architecture its own budget's file "
                   "cannot judge (ViTs asked to scan at standard run fast); the report says so.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def scan(source, clean_data, clean_budget, out, fmt, fail_on, budget, seed, detectors, calibration, labels, reference,
         prompts_file, budget_fallback, quiet) -> None:
    """Scan SOURCE: org/name[@revision], hf://org/name@rev, or a local folder."""
    from .reports import render_console, write_reports
    from .scan import ScanConfig
    from .scan import scan as run_scan

    formats = _formats(fmt)
    if out == "-" and formats != ["json"]:
        raise click.UsageError("--out - prints JSON only; use --format json")
    config = ScanConfig(budget=budget, seed=seed, fail_on=fail_on, clean_data=clean_data, clean_budget=clean_budget,
                        detectors=[d.strip() for d in detectors.split(",")] if detectors else None,
                        calibration=calibration, reference=reference, budget_fallback=budget_fallback,
                        labels=[x.strip() for x in labels.split(",") if x.strip()] if labels else None)
    if config.labels is not None and len(config.labels) < 2:
        raise click.UsageError("--labels needs at least two comma-separated labels")
    if prompts_file:
        config.prompts = _read_prompts(prompts_file)
    progress = status_printer(quiet or out == "-")
    if quiet or out == "-":  # read by huggingface_hub when it is imported, which happens later
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    outcome = run_scan(source, config, progress)
    target = out or str(default_out(source))
    written = write_reports(outcome.report, target, formats)
    if out != "-":
        if not quiet:
            click.echo(render_console(outcome.report))
            for kind, path in written.items():
                click.echo(f"{kind}: {path}")
    sys.exit(outcome.exit_code)


@cli.command()
@click.argument("config", required=False, type=str)
@click.option("--base", type=str, default=None, help="Base model (instead of CONFIG): hub id, org/name@rev or folder.")
@click.option("--candidate", "candidates", multiple=True, help="A candidate fine-tune of the base (repeat).")
@click.option("--method", type=click.Choice(["task_arithmetic", "ties", "dare_ties", "dare_linear"]),
              default="task_arithmetic", show_default=True, help="Merge method with --base/--candidate.")
@click.option("--weight", type=float, default=None, help="Weight of each candidate with --base (default 1/N).")
@click.option("--density", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Density of each candidate with --base (TIES/DARE).")
@click.option("--clean-data", type=str, default=None,
              help="Image folder or .npz of clean images; without it only data-free detectors run (exit 3).")
@click.option("--clean-budget", type=click.IntRange(8, 100000), default=300, show_default=True)
@click.option("--out", "out", type=str, default=None, help="Report folder (default ./reports/gate-<name>/); '-' prints JSON.")
@click.option("--format", "fmt", default="json,html,sarif", show_default=True, help="Comma-separated: json,html,sarif.")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default="high", show_default=True)
@click.option("--budget", type=click.Choice(["fast", "standard", "thorough"]), default="fast", show_default=True,
              help="Scan budget for every model and variant the gate scans.")
@click.option("--amplify", default="1.5", show_default=True,
              help="Comma-separated lambdas > 1 for theta0 + lambda*tau exposures ('' for none).")
@click.option("--trim-density", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="TIES-style magnitude trim of each task vector before scanning (1: skip), e.g. 0.2.")
@click.option("--leave-one-out", type=click.Choice(["flagged", "always", "never"]), default="flagged",
              show_default=True, help="When to run leave-one-out merges for attribution.")
@click.option("--emit-config", type=click.Path(dir_okay=False), default=None,
              help="Write the mergekit config without the blocked candidates here.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--detectors", type=str, default=None, help="Comma-separated detector ids (default: all for the budget).")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--quiet", is_flag=True, help="No progress lines.")
def gate(config, base, candidates, method, weight, density, clean_data, clean_budget, out, fmt, fail_on, budget,
         amplify, trim_density, leave_one_out, emit_config, seed, detectors, calibration, quiet) -> None:
    """Pre-merge gate: check a mergekit CONFIG.yml (or --base B --candidate A ...) and the merge it describes."""
    from .gate_cli import run_gate_command

    if (config is None) == (base is None):
        raise click.UsageError("give a mergekit CONFIG.yml or --base with --candidate, not both")
    if base is not None and not candidates:
        raise click.UsageError("--base needs at least one --candidate")
    if config is not None and candidates:
        raise click.UsageError("--candidate goes with --base, not with CONFIG")
    formats = _formats(fmt)
    if out == "-" and formats != ["json"]:
        raise click.UsageError("--out - prints JSON only; use --format json")
    try:
        lambdas = tuple(float(v) for v in amplify.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"--amplify takes comma-separated numbers, got {amplify!r}") from None
    if any(v <= 1 for v in lambdas):
        raise click.BadParameter("--amplify lambdas must be > 1")
    if quiet or out == "-":
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    code = run_gate_command(config=config, base=base, candidates=list(candidates), method=method, weight=weight,
                            density=density, clean_data=clean_data, clean_budget=clean_budget, out=out,
                            formats=formats, fail_on=fail_on, budget=budget, amplify=lambdas,
                            trim_density=trim_density, leave_one_out=leave_one_out, emit_config=emit_config,
                            seed=seed, detectors=detectors, calibration=calibration,
                            quiet=quiet or out == "-", progress=status_printer(quiet or out == "-"))
    sys.exit(code)


@cli.group()
def report() -> None:
    """Work with saved reports."""


@report.command("render")
@click.argument("result", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="HTML file (default: beside RESULT).")
def report_render(result, out) -> None:
    """Re-render the HTML report from a JSON report."""
    from .reports import load_report, render_html
    from .reports.atomic import atomic_write_text

    data = load_report(result)
    target = Path(out) if out else Path(result).with_suffix(".html")
    atomic_write_text(target, render_html(data))
    click.echo(str(target))


@cli.command()
@click.option("--out", type=click.Path(file_okay=False), default="demo-out", show_default=True)
@click.option("--data-dir", type=str, default=None, help="Folder with cifar10.npz (default: ../shared/data).")
# The demo trains its models for 6 epochs, fewer than the zoos the calibrations were fitted on (20);
# it scans at `fast`, whose v4 file (2026-12-05) has its clean model at p 0.48 (SUSPICIOUS from 0.59)
# and its BadNets model at 0.95.
@click.option("--budget", type=click.Choice(["fast", "standard", "thorough"]), default="fast", show_default=True)
@click.option("--epochs", type=click.IntRange(1, 100), default=6, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True)
def demo(out, data_dir, budget, epochs, seed, quiet) -> None:
    """Train a backdoored tiny classifier and its clean twin, publish both to a local hub
    cache, scan both, and write their reports."""
    from .demo import format_rows, run_demo

    rows = run_demo(Path(out), data_dir, seed, budget, epochs, status_printer(quiet))
    click.echo(format_rows(rows))
    for r in rows:
        click.echo(f"report: {r['html']}")


@cli.group()
def zoo() -> None:
    """Build zoos of clean and backdoored models (ground truth beside each)."""


def _check_attacks(check, attacks: list[str] | None) -> None:
    """A family's ``--attacks`` check (ValueError) as a one-line usage error, before anything is built."""
    try:
        check(attacks)
    except ValueError as e:
        raise click.UsageError(f"--attacks: {e}") from None


def _gammas(text: str) -> tuple[float, ...]:
    """``--trojdiff-gammas``: noise scales in (0, 1)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint="--trojdiff-gammas")
    if not all(0 < v < 1 for v in values):
        raise click.BadParameter("each noise scale must lie in (0, 1)", param_hint="--trojdiff-gammas")
    return values


@zoo.command("build")
@click.argument("family", type=click.Choice(["classifiers", "clip", "diffusion", "merging", "text-to-image"]))
@click.option("--data", "data_name", type=click.Choice(["cifar10", "gtsrb", "mnist", "synthetic"]), default="cifar10",
              show_default=True)
@click.option("--data-dir", type=str, default=None, help="Folder with the .npz datasets (default: ../shared/data).")
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--count", type=click.IntRange(2, 10000), default=None,
              help="Total models, 3 clean : 4 backdoored (overrides --clean/--backdoored).")
@click.option("--clean", "n_clean", type=click.IntRange(0, 10000), default=6, show_default=True)
@click.option("--backdoored", "n_backdoored", type=click.IntRange(0, 10000), default=8, show_default=True)
@click.option("--hard", "n_hard", type=click.IntRange(0, 10000), default=0, show_default=True,
              help="Extra hard clean models (spurious feature, imbalance, long training).")
@click.option("--archs", default="resnet", show_default=True,
              help="Comma-separated: resnet,vit (classifiers); vit,rn (clip; the default there is both).")
@click.option("--attacks", default=None, help="Comma-separated attack names (default: all); classifiers take "
              "parameters too, e.g. wanet:s=2 (recorded in each model's ground truth).")
@click.option("--train-size", type=click.IntRange(100, 100000), default=10000, show_default=True)
@click.option("--epochs", type=click.IntRange(1, 200), default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--image-size", type=click.IntRange(8, 256), default=None,
              help="classifiers, --data synthetic: image side in pixels (default 32; a 16 px zoo scans about 4x "
                   "faster).")
@click.option("--steps", type=click.IntRange(1, 100000), default=400, show_default=True,
              help="clip: training batches per model (400 is about a minute on one thread).")
@click.option("--append", is_flag=True, help="clip: add models to an existing zoo (named s<seed>-...).")
@click.option("--resume", is_flag=True, help="classifiers: keep the models an interrupted build of the same "
              "plan saved or rejected in OUT, train the rest.")
@click.option("--base-steps", type=click.IntRange(1, 10**6), default=3000, show_default=True,
              help="diffusion: training steps of the clean base.")
@click.option("--finetune-steps", type=click.IntRange(1, 10**6), default=1000, show_default=True,
              help="diffusion: fine-tuning steps of every zoo model (VillanDiffusion ODE and clean-006 on: 2x).")
@click.option("--sample-steps", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="diffusion: sampling steps when measuring attack success.")
@click.option("--trojdiff-gammas", default="0.6", show_default=True,
              help="diffusion: noise scales of the TrojDiff-style models, comma-separated, used in turn.")
@click.option("--min-asr", type=click.FloatRange(0.0, 1.0), default=0.9, show_default=True,
              help="classifiers: keep a backdoored model only if its attack success reaches this (the benchmark's "
                   "bar; lower it for pilots only: the manifest records it).")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="classifiers: models trained side by side, one process and one torch thread each.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="classifiers: where the models train (cuda: forward and backward passes on the GPU).")
@click.option("--classes", type=click.IntRange(2, 1000), default=None,
              help="classifiers: keep only the dataset's labels 0..N-1 (e.g. GTSRB's first 20 signs), for zoos of "
                   "another class count.")
@click.option("--quiet", is_flag=True)
def zoo_build(family, data_name, data_dir, out, count, n_clean, n_backdoored, n_hard, archs, attacks, train_size,
              epochs, seed, image_size, steps, append, resume, base_steps, finetune_steps, sample_steps,
              trojdiff_gammas, min_asr, jobs, device, classes, quiet) -> None:
    """Train clean and backdoored models and save them as hub-format repos."""
    if image_size is not None and (family != "classifiers" or data_name != "synthetic"):
        raise click.UsageError("--image-size sets the synthetic classifier zoo's image size (real datasets keep "
                               "their own)")
    if classes is not None and family != "classifiers":
        raise click.UsageError("--classes selects labels for classifier zoos only")
    if device == "cuda":
        import torch

        if family != "classifiers":
            raise click.UsageError("--device cuda trains classifier zoos only")
        if not torch.cuda.is_available():
            raise click.UsageError("--device cuda: torch sees no CUDA GPU on this machine")
    progress = status_printer(quiet)
    attack_list = [a.strip() for a in attacks.split(",")] if attacks else None
    if count is not None:
        n_clean = max(1, round(count * 3 / 7))
        n_backdoored = count - n_clean
    if family == "clip":
        from .zoo.clip import build_clip_zoo

        manifest = build_clip_zoo(data_name, Path(out), data_dir=data_dir, n_clean=n_clean, n_backdoored=n_backdoored,
                                  n_hard=n_hard, archs=[a.strip() for a in archs.split(",")] if archs != "resnet"
                                  else ["vit", "rn"], attacks=attack_list, train_size=train_size, steps=steps,
                                  seed=seed, append=append, progress=progress)
    elif family == "merging":  # base + task fine-tunes; --backdoored cycles badnets, blended, badmerging
        from .zoo.merging import ATTACK_KINDS, build

        manifest = build(data_name, Path(out), data_dir=data_dir, train_size=train_size, n_clean=n_clean,
                         attacks=[ATTACK_KINDS[j % 3] for j in range(n_backdoored)], epochs=epochs or 3,
                         base_epochs=8, seed=seed, progress=progress)
    elif family == "diffusion":
        from .zoo.diffusion import build_diffusion_zoo, check_attack_names

        _check_attacks(check_attack_names, attack_list)
        manifest = build_diffusion_zoo(Path(out), data_dir=data_dir, n_clean=n_clean, n_backdoored=n_backdoored,
                                       base_steps=base_steps, finetune_steps=finetune_steps,
                                       train_size=min(train_size, 9000), seed=seed, sample_steps=sample_steps,
                                       trojdiff_gammas=_gammas(trojdiff_gammas), attacks=attack_list,
                                       progress=progress)
    elif family == "text-to-image":
        from .zoo.text_to_image import build_t2i_zoo

        manifest = build_t2i_zoo(Path(out), data_dir=data_dir, n_clean=n_clean, n_backdoored=n_backdoored,
                                 base_steps=base_steps, finetune_steps=finetune_steps,
                                 train_size=min(train_size, 9000), seed=seed, progress=progress)
    else:
        from .zoo.attacks import check_attack_specs
        from .zoo.build import build_zoo

        _check_attacks(check_attack_specs, attack_list)
        manifest = build_zoo(data_name, Path(out), data_dir=data_dir, n_clean=n_clean, n_backdoored=n_backdoored,
                             n_hard=n_hard, archs=[a.strip() for a in archs.split(",")], attacks=attack_list,
                             train_size=train_size, epochs=epochs, seed=seed, progress=progress, jobs=jobs,
                             resume=resume, device=device, image_size=image_size or 32, min_asr=min_asr,
                             classes=classes)
    click.echo(f"{len(manifest['models'])} models saved, {len(manifest['rejected'])} rejected: {out}")

@cli.command()
@click.argument("zoo_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Results folder (default: ZOO/bench).")
@click.option("--budget", type=click.Choice(["fast", "standard", "thorough"]), default="standard", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-baselines", is_flag=True, help="Skip Neural Cleanse and EBYD's variance test.")
@click.option("--calibrate", is_flag=True, help="Fit the verdict combiner on one split, report on the other.")
@click.option("--holdout-attacks", default="wanet,input_aware", show_default=True,
              help="With --calibrate: attack families kept out of fitting entirely.")
@click.option("--holdout-seeds", default="1", show_default=True,
              help="With --calibrate: training seeds kept out of fitting.")
@click.option("--calibration-out", type=click.Path(dir_okay=False), default=None,
              help="With --calibrate: where to write the calibration file.")
@click.option("--from-results", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Reuse the per-model records of an earlier run (same budget) and scan only the models "
                   "added to the zoo since.")
@click.option("--fit-rows", "fit_rows", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Merging zoos, with --calibrate: also fit on another fitting zoo's rows (the fit-rows.jsonl its "
                   "bench wrote); repeatable.")
@click.option("--other-recipes", "other_recipes", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Classifier zoos, with --calibrate: another zoo's bench results.json whose clean models, of a "
                   "recipe this zoo lacks (e.g. longer training), set the BACKDOORED threshold too; repeatable.")
@click.option("--fit-results", "fit_results", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Classifier zoos, with --calibrate: another zoo's bench results.json (same budget) whose records "
                   "join the fitting split under the same hold-out rules (hard models never); repeatable.")
@click.option("--cuts-only", "cuts_only", is_flag=True,
              help="Classifier zoos, with --calibrate: keep the shipped combiner and fit only its BACKDOORED and "
                   "SUSPICIOUS cuts for models of this zoo's class count (and more), on the fitting split's "
                   "clean models.")
@click.option("--architecture", default=None,
              help="Classifier zoos, with --calibrate: fit for models of this architecture only, as scans name it "
                   "(e.g. ViTForImageClassification), on the fitting split's models of it: a combiner and cuts of "
                   "their own, added to the shipped file; with --cuts-only, only cuts, which may only rise above "
                   "the shipped cuts.")
@click.option("--budget-fallback/--no-budget-fallback", default=True, show_default=True,
              help="Classifier zoos: as scan's (--no-budget-fallback scans every model at --budget).")
@click.option("--quiet", is_flag=True)
def bench(zoo_dir, out, budget, seed, no_baselines, calibrate, holdout_attacks, holdout_seeds, calibration_out,
          from_results, fit_rows, other_recipes, fit_results, cuts_only, architecture, budget_fallback, quiet) -> None:
    """Scan every model of a zoo and measure detection against the ground truth."""
    from .bench import run_bench

    result = run_bench(Path(zoo_dir), Path(out) if out else Path(zoo_dir) / "bench", budget=budget, seed=seed,
                       baselines=not no_baselines, calibrate=calibrate,
                       holdout_attacks=[a for a in holdout_attacks.split(",") if a],
                       holdout_seeds=[int(s) for s in holdout_seeds.split(",") if s],
                       calibration_out=calibration_out, from_results=from_results, fit_rows=list(fit_rows),
                       other_recipes=list(other_recipes), cuts_only=cuts_only, fit_results=list(fit_results),
                       architecture=architecture, budget_fallback=budget_fallback,
                       command="modelscan-bd " + " ".join(sys.argv[1:]), progress=status_printer(quiet))
    click.echo(result["markdown"])


@cli.command("bench-pool")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Results folder.")
@click.option("--budget", type=click.Choice(["fast", "standard", "thorough"]), default=None,
              help="The records' scan budget (default: the first file's); every file must match it.")
@click.option("--classes", type=int, default=None,
              help="Class count of models whose records do not carry one (bench runs before 2026-12-04).")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Judge with this calibration file instead of the shipped one of the budget.")
@click.option("--without", "features_off", default="",
              help="Comma-separated features to remove, reported side by side (the scanner before a detector).")
@click.option("--min-asr", type=float, default=None,
              help="Leave out backdoored models below this attack success.")
def bench_pool(results, out, budget, classes, calibration, features_off, min_asr) -> None:
    """Judge the records of several classifier bench runs (their results.json) together."""
    from .bench_pool import run_pool

    result = run_pool(list(results), Path(out), budget=budget, classes=classes, calibration=calibration,
                      features_off=[f for f in features_off.split(",") if f], min_asr=min_asr,
                      command="modelscan-bd " + " ".join(sys.argv[1:]))
    click.echo(result["markdown"])


@cli.command("detectors")
def list_detectors() -> None:
    """List the installed detectors and their metadata."""
    from .registry import all_detectors

    for cls in all_detectors():
        m = cls.metadata()
        click.echo(f"{m['id']:20} v{m['version']:3} {m['rule_id']:10} families={','.join(m['families'])} "
                   f"cost={m['cost']} clean_data={'yes' if m['needs_clean_data'] else 'no'}  {m['title']}")


def main() -> None:
    try:
        rv = cli.main(standalone_mode=False)
    except click.UsageError as exc:  # click would exit 2, which means "error" here
        click.echo(f"usage error: {exc.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_ERROR)
    except ScanError as exc:
        kind = "usage error" if exc.exit_code == EXIT_USAGE else "error"
        click.echo(f"{kind}: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
