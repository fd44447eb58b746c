"""The ``modelscan-bd`` command line.

Exit codes (the contract with CI gates; the output format never changes them):
0 nothing at or above --fail-on, 1 findings at or above --fail-on, 2 error,
3 incomplete (unsupported family, pickle refused, detector skipped), 4 usage error.
"""
from __future__ import annotations

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
def cli() -> None:
    """Scan models from the Hugging Face Hub (or local folders) for backdoors."""


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
@click.option("--quiet", is_flag=True, help="No progress lines.")
def scan(source, clean_data, clean_budget, out, fmt, fail_on, budget, seed, detectors, calibration, quiet) -> None:
    """Scan SOURCE: org/name[@revision], hf://org/name@rev, or a local folder."""
    from .reports import render_console, write_reports
    from .scan import ScanConfig
    from .scan import scan as run_scan

    formats = _formats(fmt)
    if out == "-" and formats != ["json"]:
        raise click.UsageError("--out - prints JSON only; use --format json")
    config = ScanConfig(budget=budget, seed=seed, fail_on=fail_on, clean_data=clean_data, clean_budget=clean_budget,
                        detectors=[d.strip() for d in detectors.split(",")] if detectors else None,
                        calibration=calibration)
    progress = status_printer(quiet or out == "-")
    outcome = run_scan(source, config, progress)
    target = out or str(default_out(source))
    written = write_reports(outcome.report, target, formats)
    if out != "-":
        if not quiet:
            click.echo(render_console(outcome.report))
            for kind, path in written.items():
                click.echo(f"{kind}: {path}")
    sys.exit(outcome.exit_code)


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
@click.option("--budget", type=click.Choice(["fast", "standard", "thorough"]), default="standard", show_default=True)
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
    sys.exit(0 if all(r["correct"] for r in rows) else 1)


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
