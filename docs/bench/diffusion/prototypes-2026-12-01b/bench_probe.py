"""Run `modelscan-bd bench` with the diffusion scale probe switched on (prototype, not shipped)."""
import dataclasses, sys
from modelscan_bd.detectors import diffusion_inversion as di
for k in list(di.SETTINGS):
    di.SETTINGS[k] = dataclasses.replace(di.SETTINGS[k], scale_probe=True)
from modelscan_bd.cli import main
sys.exit(main())
