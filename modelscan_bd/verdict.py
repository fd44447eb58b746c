"""Verdict: one calibrated probability that the model is backdoored.

A logistic combiner over the detectors' statistics. Its weights and thresholds come
from a versioned calibration file fitted on the zoo (``modelscan-bd bench --calibrate``),
never from constants in code. A feature whose detector did not run is filled with the
value the calibration saw on clean models, and the verdict says the scan is incomplete.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

FEATURES = ("collapse_concentration", "collapse_agreement", "trigger_log_ratio", "trigger_holdout_success",
            "untargeted_log_ratio", "mmbd_neglog10_p", "signal_gap", "signal_success")
# Judged against clean references only (``Calibration.references``), never weighted by the combiner:
# no warp-trigger family has been in a classifier fitting split (WaNet does not train at the zoo's recipe),
# nor an input-aware one (docs/bench/feature-trigger), nor a source-specific one
# (docs/bench/cifar10-source-specific).
REFERENCES = {"warp_fragility": 1, "feature_gap": 1, "pair_score": 1}
# Their cuts: a 1 % budget of clean false alarms shared by the three, each from a fitted tail
# (``fit_references(alpha=...)``, docs/bench/reference-tails).
REFERENCE_ALPHA = 0.01 / len(REFERENCES)
# Judged against clean references of a class count (a ``class_cuts`` entry's "references"): the label
# map's spread grows with the number of labels, and all-to-all models have been in no fitting split.
CLASS_REFERENCES = {"label_map_spread": 1}


@dataclass
class Calibration:
    version: str
    provisional: bool
    description: str
    features: list[str]
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float
    fill: dict[str, float]
    backdoored_threshold: float
    suspicious_threshold: float
    detectors: dict[str, dict[str, float]]
    # The scan budget whose scans it was fitted on (None: not recorded). The detectors'
    # statistics shift with the budget (more exposure runs concentrate the collapse), so a
    # family ships one file per budget where it can (see ``load_calibration``).
    budget: str | None = None
    # One-class tests against clean references, {feature: {"mean", "sd", "z_cut", "direction", "n"}}:
    # a model whose feature lies more than z_cut reference deviations beyond the clean models'
    # mean (direction -1: below it, +1: above) is flagged on its own, whatever the combiner says.
    # For a trigger family held out of fitting no combiner weight can be learnt, only what clean
    # models look like (``reference_tests``, fitted by ``fit_references``).
    references: dict[str, dict[str, float]] = field(default_factory=dict)
    # Cuts for models of more classes than the combiner was fitted on, each {"min_classes",
    # "backdoored_threshold", "suspicious_threshold", "description"}. On GTSRB's 43 classes the
    # CIFAR-10 weights still rank models well but every score sits lower (docs/bench/gtsrb), so a
    # class count gets its own cuts, fitted on a zoo of that class count (``bench --calibrate
    # --cuts-only``, ``fit_class_cuts``) with the weights left as they are.
    # An entry may also carry its own "combiner" ({"mean", "scale", "weights", "bias", "fill"} over
    # the file's features, ``fit_class_combiner``): on GTSRB the CIFAR-10 weights let clean models'
    # natural triggers (class 12) outscore planted ones, and a fit that sees 43-class models does not.
    # The shipped entry applies from 20 classes: on a 20-class zoo it ranked better than the
    # CIFAR-10 weights (docs/bench/gtsrb20).
    # An entry may also carry "references" ({feature: reference}, as ``references``), clean-reference
    # tests that apply only from its class count (``with_class_references``).
    # An entry may name "architectures" (the adapter's architecture names, e.g.
    # "ViTForImageClassification") and a "max_classes": it then applies only to models of those
    # architectures within that class range, and wins over entries that name none. Detector scores
    # of a clean model shift with the architecture (clean ViTs collapse onto one label under Clean
    # Unlearning far more than ResNets, docs/bench/cifar10-vit), so an architecture gets cuts read
    # off clean models of its own (``fit_architecture_cuts``) under the combiner that judges its class
    # range, which ``max_classes`` keeps to the range where that combiner applies.
    class_cuts: list[dict[str, Any]] = field(default_factory=list)
    # Architectures this file must not judge, each {"architectures": [...], "budget": B, "why": text}:
    # a scan asked to run at this file's budget runs at B instead, judged by B's shipped file. The
    # shipped ``standard`` file flagged every clean ViT of two zoos while ``fast`` did not
    # (docs/bench/cifar10-vit), and a cut on its probability could not separate them (plan 2 there).
    budget_fallbacks: list[dict[str, Any]] = field(default_factory=list)
    # The clean models' tail of the file's own combiner logit, {"u", "beta", "p_u", "n", "alpha"}
    # (``fit_combiner_tail``): with it, a model short of every cut is ranked by its most unusual value
    # against clean models, the combiner's among them (``short_of_cuts_rank``). Empty: the larger of
    # the combiner's probability and the tests' ranks, as before (docs/bench/verdict-rank).
    combiner_tail: dict[str, float] = field(default_factory=dict)

    def fallback_for(self, architecture: str | None) -> dict[str, Any] | None:
        """The ``budget_fallbacks`` entry naming ``architecture``, if any."""
        return next((f for f in self.budget_fallbacks if architecture in f["architectures"]), None)

    def entries_for(self, num_classes: int | None, architecture: str | None = None) -> list[dict[str, Any]]:
        """The ``class_cuts`` entries that apply to a model, least specific first: those of its class
        count, then those that name its architecture (each group by ``min_classes``)."""
        if num_classes is None:
            return []
        entries = [c for c in self.class_cuts if c["min_classes"] <= num_classes <= c.get("max_classes", num_classes)
                   and (not c.get("architectures") or architecture in c["architectures"])]
        return sorted(entries, key=lambda c: (bool(c.get("architectures")), c["min_classes"]))

    def cuts_for(self, num_classes: int | None, architecture: str | None = None
                 ) -> tuple[float, float, dict[str, Any] | None]:
        """BACKDOORED and SUSPICIOUS thresholds for a model of ``num_classes`` classes (and
        ``architecture``), and the entry they come from (None: the file's own cuts)."""
        entries = self.entries_for(num_classes, architecture)
        if not entries:
            return self.backdoored_threshold, self.suspicious_threshold, None
        entry = entries[-1]
        return float(entry["backdoored_threshold"]), float(entry["suspicious_threshold"]), entry

    def combiner_for(self, num_classes: int | None, architecture: str | None = None
                     ) -> tuple[list[float], list[float], list[float], float, dict[str, float]]:
        """Mean, scale, weights, bias and fill of the combiner for a model of ``num_classes``
        classes: the entry's own whose cuts apply (``cuts_for``) where that has one, else the file's."""
        entry = self.cuts_for(num_classes, architecture)[2]
        c = (entry or {}).get("combiner")
        if c:
            return c["mean"], c["scale"], c["weights"], float(c["bias"]), c["fill"]
        return self.mean, self.scale, self.weights, self.bias, self.fill

    def references_for(self, num_classes: int | None, architecture: str | None = None
                       ) -> dict[str, dict[str, float]]:
        """The clean-reference tests for a model of ``num_classes`` classes: the file's own, and
        those of every entry that applies (a more specific entry's win a clash)."""
        out = dict(self.references)
        for entry in self.entries_for(num_classes, architecture):
            out.update(entry.get("references") or {})
        return out

    def describe(self) -> dict[str, Any]:
        out = {"version": self.version, "provisional": self.provisional, "description": self.description}
        return {**out, "budget": self.budget} if self.budget else out

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2) + "\n"


def load_calibration(path: str | Path | None = None, family: str = "classifier",
                     budget: str | None = None) -> Calibration:
    """A calibration file, or the shipped one of ``family``: ``{family}-{budget}.json`` when the
    package has one fitted at that budget, else ``{family}.json`` (fitted at the default budget)."""
    if path is None:
        folder = resources.files("modelscan_bd").joinpath("calibration")
        per_budget = folder.joinpath(f"{family}-{budget}.json")
        text = (per_budget if budget and per_budget.is_file() else folder.joinpath(f"{family}.json")).read_text()
    else:
        text = Path(path).read_text()
    return Calibration(**json.loads(text))


@functools.lru_cache(maxsize=None)
def shipped_calibration(budget: str) -> Calibration:
    """The shipped classifier calibration of ``budget``, read once (bench judges many records by it);
    not to be modified."""
    return load_calibration(budget=budget)


def extract_features(results: dict[str, Any]) -> dict[str, float | None]:
    """The combiner's inputs, from what the detectors left in ``context.results``."""
    collapse = results.get("exposure-collapse") or {}
    trig = results.get("trigger-recovery") or {}
    mmbd = results.get("mmbd") or {}
    signal = results.get("signal-trigger") or {}
    warp = results.get("warp-trigger") or {}
    p = mmbd.get("p_value")
    return {
        "collapse_concentration": collapse.get("concentration"),
        "collapse_agreement": collapse.get("agreement"),
        "trigger_log_ratio": _clip(trig.get("log_ratio"), -3.0, 5.0),
        "trigger_holdout_success": trig.get("holdout_success"),
        "untargeted_log_ratio": _clip(trig.get("untargeted_log_ratio"), -3.0, 5.0),
        "mmbd_neglog10_p": None if p is None else min(10.0, -math.log10(max(float(p), 1e-300))),
        "signal_gap": signal.get("gap"),
        "signal_success": signal.get("holdout_success"),
        "warp_fragility": warp.get("fragility"),
        "warp_success": warp.get("holdout_success"),
        "label_map_spread": (results.get("label-map") or {}).get("spread"),
        "feature_gap": (results.get("feature-trigger") or {}).get("gap"),
        "pair_score": (results.get("pair-trigger") or {}).get("score"),
    }


def _clip(v, lo, hi):
    return None if v is None else max(lo, min(hi, float(v)))


def probability(features: dict[str, float | None], cal: Calibration,
                num_classes: int | None = None, architecture: str | None = None) -> tuple[float, list[str]]:
    """Calibrated probability (the combiner's for ``num_classes`` classes and ``architecture``, or a
    clean-reference test's where that is larger; short of every cut, with a combiner tail, the rank
    ``short_of_cuts_rank``), and the names of features that had to be filled."""
    p, missing = combiner_probability(features, cal, num_classes, architecture)
    tests = reference_tests(features, cal, num_classes, architecture)
    rank = short_of_cuts_rank(p, features, tests, cal, num_classes, architecture)
    if rank is not None:
        return rank, missing
    for test in tests.values():
        p = max(p, test["p"])
    return p, missing


def short_of_cuts_rank(p: float, features: dict[str, float | None], tests: dict[str, dict[str, float]],
                       cal: Calibration, num_classes: int | None = None, architecture: str | None = None
                       ) -> float | None:
    """For a model short of every cut (the combiner's ``p`` and every test's under SUSPICIOUS) judged
    by the file's own combiner and cuts with a ``combiner_tail``: the BACKDOORED threshold x alpha /
    the smallest clean-tail chance over the reference tests and the combiner's logit, kept under the
    SUSPICIOUS threshold. Otherwise None (the larger of the combiner's and the tests' p applies).

    The combiner's probability and the tests' chances are different currencies: the combiner's
    threshold sits at a few per cent of clean models and the tests' cuts at 0.33 %, so as a maximum
    a clean model the combiner puts at 0.3 sorted above a source-specific model whose pair score
    only 1.5 % of clean models reach (docs/bench/verdict-rank). As chances under clean models they
    compare. Each chance continues its exponential tail below the tail's threshold, so models short
    of every tail are ordered rather than tied. Statuses never change: only the order short of the cuts."""
    tail = cal.combiner_tail
    backdoored, suspicious, entry = cal.cuts_for(num_classes, architecture)
    if not tail or entry is not None or max([p] + [t["p"] for t in tests.values()]) >= suspicious:
        return None  # flagged (or judged by another entry's combiner): the status and p stand
    rarest = min(clean_chances(p, features, cal, num_classes, architecture).values())
    t = min(max(backdoored, 1e-6), 1 - 1e-6)
    return min(math.nextafter(min(t, suspicious), 0.0), t * tail["alpha"] / max(rarest, 1e-300))


def clean_chances(p: float, features: dict[str, float | None], cal: Calibration, num_classes: int | None = None,
                  architecture: str | None = None) -> dict[str, float]:
    """A clean model's chance of a value this far out, under each fitted clean tail (continued below
    its threshold): the combiner's logit ("combiner", from its probability ``p``) and every measured
    reference test's feature. Needs ``cal.combiner_tail``."""
    tail = cal.combiner_tail
    out = {"combiner": _extended_chance(_logit(p), tail["u"], tail["beta"], tail["p_u"])}
    for name, ref in cal.references_for(num_classes, architecture).items():
        if features.get(name) is not None and "tail" in ref:
            out[name] = _reference_chance(ref["direction"] * float(features[name]), ref)
    return out


def _logit(p: float) -> float:
    return math.log(max(p, 1e-300) / max(1 - p, 1e-300))


def _extended_chance(w: float, u: float, beta: float, p_u: float) -> float:
    """p_u exp(-(w - u) / beta): an exponential tail's chance of a value beyond ``w`` (high is
    suspicious), continued below its threshold ``u`` (above 1 there: it only orders)."""
    if beta <= 0:
        return 1.0
    return p_u * math.exp(min(700.0, -(w - u) / beta))


def fit_combiner_tail(clean_rows: list[dict[str, float | None]], cal: Calibration, alpha: float) -> dict[str, float]:
    """The exponential tail (``tail_cut``) of the file's own combiner logit over clean models' features."""
    z = [_logit(combiner_probability(r, cal)[0]) for r in clean_rows]
    tail = tail_cut(z, alpha)
    return {"u": tail["u"], "beta": tail["beta"], "p_u": tail["p_u"], "n": len(z), "alpha": alpha}


def combiner_probability(features: dict[str, float | None], cal: Calibration,
                         num_classes: int | None = None, architecture: str | None = None
                         ) -> tuple[float, list[str]]:
    """The logistic combiner's probability alone (``Calibration.combiner_for`` that class
    count), and the names of features that had to be filled."""
    mean, scale, weights, bias, fill = cal.combiner_for(num_classes, architecture)
    z, missing = bias, []
    for name, mu, sd, w in zip(cal.features, mean, scale, weights):
        v = features.get(name)
        if v is None:
            missing.append(name)
            v = fill.get(name, mu)
        z += w * (float(v) - mu) / (sd or 1.0)
    return _sigmoid(z), missing


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def reference_tests(features: dict[str, float | None], cal: Calibration,
                    num_classes: int | None = None, architecture: str | None = None
                    ) -> dict[str, dict[str, float]]:
    """Each clean-reference test (``Calibration.references_for`` the class count) whose feature was
    measured: its z (reference deviations beyond the clean mean, positive towards a backdoor)
    and its probability: from the BACKDOORED threshold at the cut rising beyond it (a test that
    fires is a detection, however high the combiner's threshold sits). Short of the cut it never
    changes the status: 0 (a one-class test says nothing about a value clean models can have; a
    soft normal tail lifted clean models at z 2.2 into SUSPICIOUS), or, for a test with a fitted
    tail (``fit_references(alpha=...)``), the threshold scaled by alpha over the tail's chance of a
    clean value this far out, kept under the SUSPICIOUS threshold: it only ranks, so that a model
    just short of a cut sorts above clean models' ordinary values (source-specific models' pair
    scores, docs/bench/reference-tails)."""
    out = {}
    t = min(max(cal.backdoored_threshold, 1e-6), 1 - 1e-6)
    at_cut = math.log(t / (1 - t))
    below = math.nextafter(min(t, cal.cuts_for(num_classes, architecture)[1]), 0.0)
    for name, ref in cal.references_for(num_classes, architecture).items():
        v = features.get(name)
        if v is None:
            continue
        z = ref["direction"] * (float(v) - ref["mean"]) / ref["sd"]
        if z >= ref["z_cut"]:
            p = _sigmoid(z - ref["z_cut"] + at_cut)
        else:
            p = min(below, t * ref["alpha"] / _tail_chance(ref["direction"] * float(v), ref)) if "tail" in ref else 0.0
        out[name] = {"z": round(z, 3), "z_cut": ref["z_cut"], "p": p}
    return out


def _tail_chance(w: float, ref: dict[str, Any]) -> float:
    """A clean model's chance of a value beyond ``w`` (oriented: high is suspicious) under the
    reference's exponential tail; 1 at or below the tail's threshold, where it was not fitted."""
    return 1.0 if w <= ref["direction"] * ref["tail"]["u"] else _reference_chance(w, ref)


def _reference_chance(w: float, ref: dict[str, Any]) -> float:
    """The reference's exponential tail at ``w`` (oriented), continued below its threshold (``_extended_chance``)."""
    tail = ref["tail"]
    return _extended_chance(w, ref["direction"] * tail["u"], tail["beta"], tail["p_u"])


def fit_references(rows: list[dict[str, float | None]], labels: list[int], references: dict[str, int],
                   z_cut: float, alpha: float | None = None) -> dict[str, dict[str, float]]:
    """Clean-model mean and deviation of each reference feature (direction -1: low is suspicious).
    The deviation is the sample one widened by sqrt(1 + 1/n), the spread a new clean model's value
    has around a mean estimated from n (a prediction interval), since n is small.

    The cut is ``z_cut`` deviations, or, with ``alpha`` and at least ``TAIL_MIN`` clean models, the
    value a clean model exceeds with probability ``alpha`` under an exponential tail fitted to the
    clean models (``tail_cut``), written as the z_cut it amounts to. Clean references are skewed
    and heavy-tailed (docs/bench/reference-tails): mean + 3 deviations, 0.13 % for a normal, let
    3 of 107 clean models past the feature-gap cut and 2 of 266 past the warp cut."""
    out = {}
    for name, direction in references.items():
        vals = [float(r[name]) for r, y in zip(rows, labels) if not y and r.get(name) is not None]
        if len(vals) < 3:
            continue
        n = len(vals)
        mean = sum(vals) / n
        sd = max(math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) * math.sqrt(1 + 1 / n), 1e-6)
        ref = {"mean": mean, "sd": sd, "z_cut": z_cut, "direction": direction, "n": n}
        if alpha is not None and n >= TAIL_MIN:
            tail = tail_cut([direction * v for v in vals], alpha)
            ref.update(z_cut=(tail["cut"] - direction * mean) / sd, cut=direction * tail["cut"], alpha=alpha,
                       tail={"u": direction * tail["u"], "beta": tail["beta"], "p_u": tail["p_u"]})
        out[name] = ref
    return out


# A tail fitted to fewer clean models than this rests on too few exceedances (4 at the 80th percentile).
TAIL_MIN = 20


def tail_cut(vals: list[float], alpha: float, quantile: float = 0.8) -> dict[str, float]:
    """The value exceeded with probability ``alpha`` (high is suspicious) under a peaks-over-threshold
    fit: above u, the ``quantile``-th sample value, exceedances are exponential with their sample mean
    beta (a generalised Pareto tail of shape 0, the Gumbel domain of normal, log-normal and gamma
    tails), so P(v > u + x) = p_u exp(-x / beta) and the cut is u + beta ln(p_u / alpha). Heavier than
    a normal tail, it needs no assumption about the bulk of the distribution."""
    v = sorted(vals)
    u = v[int(quantile * len(v))]
    excess = [x - u for x in v if x > u]
    if not excess:  # every value at or below u: no tail to fit, the cut is the largest value seen
        return {"cut": u, "u": u, "beta": 0.0, "p_u": 0.0}
    beta, p_u = sum(excess) / len(excess), len(excess) / len(v)
    return {"cut": u + beta * math.log(p_u / alpha), "u": u, "beta": beta, "p_u": p_u}


def status_for(p: float, cal: Calibration, incomplete: bool, num_classes: int | None = None,
               architecture: str | None = None) -> str:
    backdoored, suspicious, _ = cal.cuts_for(num_classes, architecture)
    if p >= backdoored:
        return "BACKDOORED"
    if p >= suspicious:
        return "SUSPICIOUS"
    return "INCOMPLETE" if incomplete else "CLEAN"


def summary_for(status: str, p: float, detail: str, incomplete: list[str]) -> str:
    """The verdict's one-line summary, the same wording for every family; ``detail`` follows
    a BACKDOORED or SUSPICIOUS verdict (e.g. "; suspected target 4 (deer)")."""
    return {
        "BACKDOORED": f"Backdoor detected (p={p:.2f}){detail}.",
        "SUSPICIOUS": f"Suspicious (p={p:.2f}){detail}.",
        "CLEAN": f"No backdoor found (p={p:.2f}) by any detector that ran.",
        "INCOMPLETE": f"Not fully scanned (p={p:.2f} from what ran): " + "; ".join(incomplete[:3]),
    }[status]


def severity_for(status: str, p: float) -> str:
    """The verdict finding's severity: BACKDOORED is high, critical from p = 0.97."""
    return {"BACKDOORED": "critical" if p >= 0.97 else "high", "SUSPICIOUS": "medium"}.get(status, "info")


Text = str | Callable[[str], str]


def _for_status(value, status: str):
    """``value`` itself, or what it gives for ``status`` when it is a function."""
    return value(status) if callable(value) else value


def calibrated_verdict(features: dict[str, float | None], cal: Calibration, incomplete: list[str], *,
                       detail: Text = "", note: Text = "", pattern: Text | None = None,
                       targets: Callable[[], list[tuple[int, str]]] | None = None,
                       title: str = "Backdoor model detection (calibrated verdict)",
                       extra: dict[str, Any] | Callable[[str], dict[str, Any]] | None = None,
                       evidence: dict[str, Any] | Callable[[str], dict[str, Any]] | None = None,
                       num_classes: int | None = None, architecture: str | None = None):
    """The verdict dict and its MSBD-V001 finding, built the same way for every family.

    ``detail`` follows a BACKDOORED or SUSPICIOUS summary inside its sentence, ``note`` is a
    sentence after it; either (and ``pattern``) may be a function of the status. ``targets``
    is asked only for a flagged model and gives (label, name) pairs; ``pattern`` defaults to
    all-to-one when a flagged model has targets. ``extra`` adds keys to the verdict and
    ``evidence`` to the finding (either may also be a function of the status). ``num_classes``
    and ``architecture`` pick the calibration's cuts for that class count and architecture
    (``Calibration.cuts_for``).
    """
    from .findings import Finding

    p, missing = probability(features, cal, num_classes, architecture)
    status = status_for(p, cal, bool(incomplete), num_classes, architecture)
    backdoored_cut, suspicious_cut, class_cut = cal.cuts_for(num_classes, architecture)
    flagged = status in ("BACKDOORED", "SUSPICIOUS")
    picked = targets() if (flagged and targets is not None) else []
    summary = summary_for(status, p, _for_status(detail, status), incomplete) + _for_status(note, status)
    pattern = ("all-to-one" if flagged and picked else "none") if pattern is None else _for_status(pattern, status)
    rounded = {k: (None if v is None else round(v, 4)) for k, v in features.items()}
    verdict = {"status": status, "probability": round(p, 4),
               "suspected_targets": [{"label": t, "name": n, "confidence": round(p, 4)} for t, n in picked],
               "pattern": pattern, "summary": summary, "incomplete_reasons": incomplete,
               "features": rounded, "calibration": cal.describe(), **(_for_status(extra, status) or {})}
    finding = Finding(rule_id="MSBD-V001", detector="verdict", detector_version=cal.version,
                      status="failed" if flagged else "passed", severity=severity_for(status, p),
                      title=title, message=summary, score=p, threshold=backdoored_cut,
                      target_labels=[t for t, _ in picked],
                      evidence={"features": rounded, "filled_features": missing,
                                "suspicious_threshold": suspicious_cut, "calibration": cal.describe(),
                                **({"class_cut": class_cut} if class_cut else {}),
                                **({"reference_tests": reference_tests(features, cal, num_classes, architecture)}
                                   if cal.references_for(num_classes, architecture) else {}),
                                **_ranking_evidence(features, cal, num_classes, architecture),
                                **(_for_status(evidence, status) or {})})
    return verdict, finding


def _ranking_evidence(features: dict[str, float | None], cal: Calibration, num_classes: int | None,
                      architecture: str | None) -> dict[str, Any]:
    """For a model ranked short of every cut (``short_of_cuts_rank``): each clean-tail chance and the
    rarest, which set its probability; else nothing."""
    if not cal.combiner_tail:
        return {}
    p = combiner_probability(features, cal, num_classes, architecture)[0]
    if short_of_cuts_rank(p, features, reference_tests(features, cal, num_classes, architecture), cal,
                          num_classes, architecture) is None:
        return {}
    chances = clean_chances(p, features, cal, num_classes, architecture)
    return {"short_of_cuts": {"clean_chances": {k: float(f"{v:.4g}") for k, v in chances.items()},
                              "rarest": min(chances, key=chances.get)}}


def uncalibrated_verdict(features: dict[str, float | None], incomplete: list[str]):
    """INCOMPLETE verdict and a skipped MSBD-V001 finding, for a family with no calibration to apply."""
    from .findings import Finding

    summary = "Not fully scanned: " + "; ".join(incomplete[:3])
    verdict = {"status": "INCOMPLETE", "probability": None, "suspected_targets": [], "pattern": "none",
               "summary": summary, "incomplete_reasons": incomplete, "features": features, "calibration": None}
    return verdict, Finding(rule_id="MSBD-V001", detector="verdict", detector_version="none", status="skipped",
                            severity="info", title="Backdoor model detection (calibrated verdict)", message=summary,
                            evidence={"features": features})


def fit_calibration(rows: list[dict[str, float | None]], labels: list[int], features, *, version: str,
                    description: str, detectors: dict[str, Any] | None = None, max_fpr: float = 0.05,
                    max_threshold: float = 0.9, budget: str | None = None,
                    references: dict[str, int] | None = None, z_cut: float = 3.0, alpha: float | None = None,
                    other_recipes_clean: list[dict[str, float | None]] | None = None,
                    other_recipes_max_threshold: float = 0.95) -> Calibration:
    """Fit the logistic combiner and set its thresholds, the same way for every family.

    ``references`` (feature -> direction) adds clean-reference tests (``fit_references``) cut at
    ``z_cut`` deviations: 3, the usual one-sided 3-sigma rule (0.13 % of a normal lies beyond it),
    or, with ``alpha``, at the clean models' fitted tail.

    BACKDOORED: the lowest probability that keeps the fitting split's FPR at or below
    ``max_fpr`` (never below 0.5 nor above ``max_threshold``); SUSPICIOUS: above every clean
    model seen in fitting (never below 0.25).

    ``other_recipes_clean``: features of clean models trained by other recipes (e.g. longer),
    never fitted on. The combiner's scores shift with the recipe while the ranking holds, so
    BACKDOORED is then the cut at ``max_fpr`` over every clean model seen, fitting split and
    these (never above ``other_recipes_max_threshold``), and the fitting recipe's own cut
    becomes SUSPICIOUS.
    """
    mean, scale, weights, bias, fill = fit_logistic(rows, labels, features)
    cal = Calibration(version=version, provisional=False, description=description, features=list(features),
                      mean=mean, scale=scale, weights=weights, bias=bias, fill=fill,
                      backdoored_threshold=0.5, suspicious_threshold=0.25, detectors=detectors or {},
                      budget=budget, references=fit_references(rows, labels, references or {}, z_cut, alpha))
    clean = sorted(probability(r, cal)[0] for r, y in zip(rows, labels) if not y)
    if clean:
        cal.backdoored_threshold = float(min(max_threshold, max(0.5, _fpr_cut(clean, max_fpr))))
        cal.suspicious_threshold = float(min(cal.backdoored_threshold, max(0.25, clean[-1] + 1e-6)))
    if other_recipes_clean:
        every = sorted(clean + [probability(r, cal)[0] for r in other_recipes_clean])
        in_recipe = cal.backdoored_threshold
        cal.backdoored_threshold = float(min(other_recipes_max_threshold, max(in_recipe, _fpr_cut(every, max_fpr))))
        cal.suspicious_threshold = in_recipe
    return cal


def fit_class_cuts(cal: Calibration, clean_rows: list[dict[str, float | None]], min_classes: int, *,
                   version: str, description: str, max_fpr: float = 0.05, suspicious_fpr: float = 0.2,
                   floor: float = 0.25) -> Calibration:
    """``cal`` with its own weights and new cuts for models of ``min_classes`` classes or more,
    read off clean models of that class count (``clean_rows``, their features): BACKDOORED the
    lowest score that flags at most ``max_fpr`` of them, SUSPICIOUS at most ``suspicious_fpr``
    (about one clean model in five reaches it). Neither goes below ``floor`` nor above the
    file's own cut: this moves cuts down for scores that sit lower, never up. The combiner that
    judges that class count now (an entry's own, from ``fit_class_combiner``, perhaps fitted for
    fewer classes) scores them and is kept: new cuts never swap the weights behind them."""
    current = cal.cuts_for(min_classes)[2] or {}
    combiner = {"combiner": current["combiner"]} if "combiner" in current else {}
    return _with_class_entry(cal, clean_rows, min_classes, combiner, version=version, description=description,
                             max_fpr=max_fpr, suspicious_fpr=suspicious_fpr, backdoored_floor=floor, floor=floor,
                             ceiling=cal.backdoored_threshold, suspicious_ceiling=cal.suspicious_threshold)


def fit_architecture_cuts(cal: Calibration, clean_rows: list[dict[str, float | None]], architecture: str,
                          num_classes: int, *, version: str, description: str, max_fpr: float = 0.05,
                          suspicious_fpr: float = 0.2, ceiling: float = 0.999) -> Calibration:
    """``cal`` with an entry for models of ``architecture`` over the class range whose judge (the
    file's own combiner, or a class-count entry's) also judges ``num_classes``: that judge's
    combiner, and cuts read off ``clean_rows`` (clean models of that architecture and class count)
    as in ``fit_class_cuts``, BACKDOORED at most ``max_fpr`` of them and SUSPICIOUS at most
    ``suspicious_fpr``. Unlike class-count cuts these may only rise above the judge's own (never
    past ``ceiling``): clean models of another architecture can score higher under weights fitted
    on ResNets, and nothing here measures how many backdoored ones a lower cut would find."""
    backdoored_cut, suspicious_cut, judge = cal.cuts_for(num_classes)
    combiner = {"combiner": judge["combiner"]} if judge and "combiner" in judge else {}
    min_classes, max_classes = _judge_range(cal, num_classes)
    return _with_class_entry(cal, clean_rows, min_classes, combiner, version=version,
                             description=description, max_fpr=max_fpr, suspicious_fpr=suspicious_fpr,
                             backdoored_floor=backdoored_cut, floor=suspicious_cut, ceiling=ceiling,
                             suspicious_ceiling=1.0, architecture=architecture,
                             max_classes=max_classes, scored_as=num_classes)


def _judge_range(cal: Calibration, num_classes: int) -> tuple[int, int | None]:
    """The class range (min, max; None: no upper end) over which the file's judge of ``num_classes``
    (its own combiner or a class-count entry's) applies: where an architecture entry fitted at that
    class count may apply too."""
    judge = cal.cuts_for(num_classes)[2]
    above = [c["min_classes"] for c in cal.class_cuts if not c.get("architectures") and c["min_classes"] > num_classes]
    return (judge["min_classes"] if judge else 1), (min(above) - 1 if above else None)


def fit_architecture_combiner(cal: Calibration, rows: list[dict[str, float | None]], labels: list[int],
                              clean_rows: list[dict[str, float | None]], architecture: str, num_classes: int, *,
                              version: str, description: str, max_fpr: float = 0.05, suspicious_fpr: float = 0.2,
                              max_threshold: float = 0.9) -> Calibration:
    """``cal`` with an entry for models of ``architecture`` over the class range whose judge also
    judges ``num_classes`` (as ``fit_architecture_cuts``), carrying a combiner of its own:
    ``fit_logistic`` over the file's features on ``rows`` (models of that architecture), and cuts
    read off ``clean_rows`` as ``fit_class_combiner`` does (BACKDOORED at ``max_fpr``, never below
    0.5 nor above ``max_threshold``; SUSPICIOUS at ``suspicious_fpr``). Where the file's weights rank
    another architecture well but squeeze its scores near a cut (ViTs at ``fast``: SIG models just
    under it, docs/bench/cifar10-vit plan 4), weights fitted on that architecture can place it."""
    mean, scale, weights, bias, fill = fit_logistic(rows, labels, cal.features)
    combiner = {"combiner": {"mean": mean, "scale": scale, "weights": weights, "bias": bias, "fill": fill}}
    min_classes, max_classes = _judge_range(cal, num_classes)
    return _with_class_entry(cal, clean_rows, min_classes, combiner, version=version,
                             description=description, max_fpr=max_fpr, suspicious_fpr=suspicious_fpr,
                             backdoored_floor=0.5, floor=0.25, ceiling=max_threshold, suspicious_ceiling=1.0,
                             architecture=architecture, max_classes=max_classes, scored_as=num_classes)


def fit_class_combiner(cal: Calibration, rows: list[dict[str, float | None]], labels: list[int],
                       clean_rows: list[dict[str, float | None]], min_classes: int, *, version: str,
                       description: str, max_fpr: float = 0.05, suspicious_fpr: float = 0.2,
                       max_threshold: float = 0.9) -> Calibration:
    """``cal`` with its own combiner and cuts for models of ``min_classes`` classes or more.

    The combiner is ``fit_logistic`` over the file's features on ``rows`` (models of that class
    count, plus any others, such as the file's own fitting split, whose attack families it should
    also learn). The cuts come from ``clean_rows``, clean models of that class count, as in
    ``fit_class_cuts``, except that BACKDOORED is never below 0.5: those models were fitted on,
    so their scores are optimistic (``fit_calibration`` keeps the same floor).
    """
    mean, scale, weights, bias, fill = fit_logistic(rows, labels, cal.features)
    combiner = {"combiner": {"mean": mean, "scale": scale, "weights": weights, "bias": bias, "fill": fill}}
    return _with_class_entry(cal, clean_rows, min_classes, combiner, version=version, description=description,
                             max_fpr=max_fpr, suspicious_fpr=suspicious_fpr, backdoored_floor=0.5, floor=0.25,
                             ceiling=max_threshold, suspicious_ceiling=1.0)


def with_class_references(cal: Calibration, clean_rows: list[dict[str, float | None]], min_classes: int,
                          references: dict[str, int], *, version: str, description: str,
                          z_cut: float = 3.0, fixed_cuts: dict[str, float] | None = None) -> Calibration:
    """A copy of ``cal`` whose class-count entry for ``min_classes`` (which must exist) carries
    clean-reference tests for ``references`` (feature -> direction), fitted on ``clean_rows``,
    clean models of that class count or more (``fit_references``). Its combiner and cuts stay.

    ``fixed_cuts`` (feature -> value): a cut chosen beforehand (a preregistered rule) replaces the
    ``z_cut`` deviations for that feature; the test then fires exactly from that value, and the
    clean models' spread only shapes the probability beyond it."""
    import copy

    out = copy.deepcopy(cal)
    entry = next((c for c in out.class_cuts if c["min_classes"] == min_classes and not c.get("architectures")), None)
    if entry is None:
        raise ValueError(f"the calibration has no entry for {min_classes}+ classes to add references to")
    fitted = fit_references(clean_rows, [0] * len(clean_rows), references, z_cut)
    if set(fitted) != set(references):
        raise ValueError(f"fewer than 3 clean models measured {sorted(set(references) - set(fitted))}")
    for name, cut in (fixed_cuts or {}).items():
        ref = fitted[name]
        ref.update(cut=float(cut), z_cut=ref["direction"] * (float(cut) - ref["mean"]) / ref["sd"])
    entry["references"] = {**(entry.get("references") or {}), **fitted}
    entry["references_description"] = description
    out.version = version
    return out


def _with_class_entry(cal: Calibration, clean_rows: list[dict[str, float | None]], min_classes: int,
                      combiner: dict[str, Any], *, version: str, description: str, max_fpr: float,
                      suspicious_fpr: float, backdoored_floor: float, floor: float, ceiling: float,
                      suspicious_ceiling: float, architecture: str | None = None, max_classes: int | None = None,
                      scored_as: int | None = None) -> Calibration:
    """A copy of ``cal`` whose entry for ``min_classes`` (and ``architecture``, up to ``max_classes``;
    replacing any such entry) holds ``combiner`` and the cuts that ``clean_rows`` get under it, scored
    as models of ``scored_as`` classes (default ``min_classes``)."""
    import copy

    if not clean_rows:
        raise ValueError("fitting cuts needs clean models")
    out = copy.deepcopy(cal)
    out.version = version
    entry: dict[str, Any] = {"min_classes": int(min_classes), "backdoored_threshold": 1.0, "suspicious_threshold": 1.0,
                             "clean_models": len(clean_rows), "description": description, **combiner}
    if architecture:
        entry["architectures"] = [architecture]
    if max_classes is not None:
        entry["max_classes"] = int(max_classes)
    # the entry's clean-reference tests are fitted on their own (``with_class_references``) and stay
    def same(c: dict[str, Any]) -> bool:  # the entry this one replaces (other architectures' entries stay)
        return c["min_classes"] == min_classes and c.get("architectures") == entry.get("architectures")

    replaced = next((c for c in cal.class_cuts if same(c)), {})
    entry.update({k: replaced[k] for k in ("references", "references_description") if k in replaced})
    out.class_cuts = sorted([c for c in cal.class_cuts if not same(c)] + [entry], key=lambda c: c["min_classes"])
    clean = sorted(probability(r, out, scored_as or min_classes, architecture)[0] for r in clean_rows)
    backdoored = min(ceiling, max(backdoored_floor, _fpr_cut(clean, max_fpr)))
    entry["backdoored_threshold"] = float(backdoored)
    suspicious = min(backdoored, suspicious_ceiling, max(floor, _fpr_cut(clean, suspicious_fpr)))
    entry["suspicious_threshold"] = float(suspicious)
    return out


def _fpr_cut(clean_sorted: list[float], max_fpr: float) -> float:
    """The lowest score that flags at most ``max_fpr`` of these (sorted) clean models' scores."""
    k = int(math.floor((1 - max_fpr) * len(clean_sorted)))
    return clean_sorted[min(k, len(clean_sorted) - 1)] + 1e-6


def fit_logistic(rows: list[dict[str, float | None]], labels: list[int], features=FEATURES,
                 l2: float = 1.0) -> tuple[list[float], list[float], list[float], float, dict[str, float]]:
    """Fit standardised L2-regularised logistic regression (Newton steps; deterministic).

    Returns mean, scale, weights, bias, and fill values (clean-model medians) for missing features.
    """
    import numpy as np

    clean_rows = [r for r, y in zip(rows, labels) if y == 0] or rows
    fill = {f: float(np.median([r[f] for r in clean_rows if r.get(f) is not None] or [0.0])) for f in features}
    x = np.array([[r.get(f) if r.get(f) is not None else fill[f] for f in features] for r in rows], dtype=float)
    y = np.array(labels, dtype=float)
    mu, sd = x.mean(0), x.std(0)
    sd[sd < 1e-6] = 1.0
    xs = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    w = np.zeros(xs.shape[1])
    reg = np.full(xs.shape[1], l2)
    reg[-1] = 0.0  # the bias is not shrunk
    for _ in range(50):
        p = 1 / (1 + np.exp(-xs @ w))
        grad = xs.T @ (p - y) + reg * w
        hess = xs.T @ (xs * (p * (1 - p))[:, None]) + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return mu.tolist(), sd.tolist(), w[:-1].tolist(), float(w[-1]), fill
