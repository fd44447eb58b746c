"""Each candidate's trigger inverted against the base (cached by the bench), run through theta_0 + lam * tau for lam
from 0 (the base) to 1 (the candidate), and the width of lam over which its success climbs from 10 % to 90 % of the
way. Asks whether a planted trigger switches on over a narrow stretch of the task vector while a fine-tune's natural
patch grows along all of it. Usage: candidate-trigger-interpolation.py ZOO RUN"""
import json
import sys
from pathlib import Path

from modelscan_bd.gate import trigger_success, with_state
from modelscan_bd.merging import scaled, task_vector
from zoo_probe import ZooProbe

LAMS = [round(0.1 * i, 1) for i in range(11)]


def width(curve: list[float], lo: float = 0.1, hi: float = 0.9) -> float:
    """lam distance between the points where success first reaches lo and hi of its rise from lam 0 to lam 1."""
    def cross(level: float) -> float:
        for i in range(1, len(curve)):
            if curve[i] >= level:
                a, b = curve[i - 1], curve[i]
                return LAMS[i - 1] + (LAMS[i] - LAMS[i - 1]) * ((level - a) / (b - a) if b > a else 0.0)
        return LAMS[-1]
    rise = curve[-1] - curve[0]
    return round(cross(curve[0] + hi * rise) - cross(curve[0] + lo * rise), 3)


z = ZooProbe(Path(sys.argv[1]), Path(sys.argv[2]))
trig = z.cached(["differential", "own"], 3)
flags = z.flagged()
base_state = z.base.adapter.model.net.state_dict()
for n, (flag, bd, attack) in sorted(flags.items()):
    t = trig.get(n)
    if not t or (t["log_ratio"] < 0.4 and not bd):  # clean candidates far from any cut are left out
        continue
    tau = task_vector(base_state, z.models[n].model.net.state_dict())
    curve = [round(trigger_success(with_state(z.base.adapter, scaled(base_state, tau, lam), "interp"),
                                   t["_trigger"], t["label"], z.clean), 3) for lam in LAMS]
    print(json.dumps({"zoo": z.zoo.name, "name": n, "bd": bd, "attack": attack, "flag": flag,
                      "label": t["label"], "log_ratio": t["log_ratio"], "width_10_90": width(curve),
                      "success_by_lam": dict(zip(map(str, LAMS), curve))}), flush=True)
