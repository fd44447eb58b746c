"""Timing of one diffusion scan of a 32x32 tiny UNet (synthetic digits, STEPS training steps:
for timing only) with N torch threads; wall and CPU seconds of this process.
Usage: time32.py OUT THREADS STEPS BUDGET...  (20 steps: not a denoiser, refused by 5.1's check)"""
import json, sys, time
from pathlib import Path
import torch
out = Path(sys.argv[1]); threads = int(sys.argv[2]); steps = int(sys.argv[3]); budgets = sys.argv[4:]
torch.set_num_threads(threads)
from modelscan_bd.zoo.diffusion import save_diffusers_repo, synthetic_digits, tiny_unet, train_unet
from modelscan_bd.scan import ScanConfig, scan
from modelscan_bd.detectors.diffusion_inversion import DiffusionInversionDetector

torch.manual_seed(0)
data, _ = synthetic_digits(256, seed=0, image_size=32)
unet = train_unet(tiny_unet(image_size=32), data, steps=steps, lr=1e-3, seed=0)
repo = save_diffusers_repo(unet, out / "ddpm-32")
res = {"torch_threads": threads, "detector_version": DiffusionInversionDetector.version,
       "model": f"tiny UNet2DModel 32x32, synthetic digits, {steps} training steps"}
for b in budgets:
    c0, w0 = time.process_time(), time.perf_counter()
    o = scan(str(repo), ScanConfig(budget=b, seed=0))
    res[f"32x32-{b}"] = {"wall_s": round(time.perf_counter() - w0, 1), "cpu_s": round(time.process_time() - c0, 1),
                         "status": o.report["verdict"]["status"], "peak_mb": o.report["timing"]["peak_memory_mb"]}
    print(json.dumps(res), flush=True)
