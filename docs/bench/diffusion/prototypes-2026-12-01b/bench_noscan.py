"""Run `modelscan-bd bench` with the generation scan off (= detector version 1's decision)."""
import dataclasses, sys
from modelscan_bd.detectors import diffusion_inversion as di
for k in list(di.SETTINGS):
    di.SETTINGS[k] = dataclasses.replace(di.SETTINGS[k], generation_scan=False)
from modelscan_bd.cli import main
sys.exit(main())
