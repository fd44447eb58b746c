"""``modelscan-bd gate``: build the config, run the gate, write reports and the safe config."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import click

from .gate import GateOptions, run_gate
from .gate_config import dump_config, explicit_config, load_config
from .gate_config import emit_config as emit_config_data
from .reports.atomic import atomic_write_text
from .reports.gate_report import render_gate_console, write_gate_reports


def default_gate_out(config: str | None, base: str | None) -> Path:
    name = Path(config).stem if config else (base or "merge").rstrip("/").split("@")[0].split("/")[-1]
    return Path("reports") / ("gate-" + (re.sub(r"[^\w.\-]+", "_", name) or "merge"))


def run_gate_command(*, config: str | None, base: str | None, candidates: list[str], method: str,
                     weight: float | None, density: float, clean_data: str | None, clean_budget: int,
                     out: str | None, formats: list[str], fail_on: str, budget: str, amplify: tuple[float, ...],
                     trim_density: float, leave_one_out: str, emit_config: str | None, seed: int,
                     detectors: str | None, calibration: str | None, quiet: bool,
                     progress: Callable[[str], None]) -> int:
    cfg = load_config(config) if config else explicit_config(base, candidates, method, weight, density)
    options = GateOptions(clean_data=clean_data, clean_budget=clean_budget, budget=budget, seed=seed,
                          fail_on=fail_on, amplify=amplify, trim_density=trim_density,
                          leave_one_out=leave_one_out,
                          detectors=[d.strip() for d in detectors.split(",")] if detectors else None,
                          calibration=calibration)
    outcome = run_gate(cfg, options, progress)
    target = out or str(default_gate_out(config, base))
    written = write_gate_reports(outcome.report, target, formats)
    if emit_config:
        blocked = outcome.blocked()
        if len(blocked) == len(cfg.candidates):
            click.echo(f"not writing {emit_config}: every candidate is blocked", err=True)
        else:
            atomic_write_text(Path(emit_config), dump_config(emit_config_data(cfg, blocked)))
            if not quiet:
                click.echo(f"safe config ({len(blocked)} blocked candidate(s) removed): {emit_config}")
    if out != "-" and not quiet:
        click.echo(render_gate_console(outcome.report), nl=False)
        for kind, path in written.items():
            click.echo(f"{kind}: {path}")
    return outcome.exit_code



