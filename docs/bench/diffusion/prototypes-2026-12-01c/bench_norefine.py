"""Run `modelscan-bd bench` with the refinement off (= detector version 2's decision: the
refinement runs after every other random draw, so everything else is unchanged)."""
import dataclasses, sys
from modelscan_bd.detectors import diffusion_inversion as di
for k in list(di.SETTINGS):
    di.SETTINGS[k] = dataclasses.replace(di.SETTINGS[k], refinement=False)
from modelscan_bd.cli import main
sys.exit(main())
