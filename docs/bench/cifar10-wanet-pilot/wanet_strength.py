"""How strong must WaNet's warp be for a tiny ResNet on 8000 CIFAR-10 images to learn it (ASR >= 0.9)?"""
import json, sys, time
import torch
from modelscan_bd.data import load_dataset
from modelscan_bd.zoo.attacks import attack_from_name
from modelscan_bd.zoo.train import train_many

if __name__ == '__main__':
    s_values = [float(v) for v in sys.argv[1].split(",")]
    att_seeds = [int(v) for v in sys.argv[2].split(",")] if len(sys.argv) > 2 else [123] * len(s_values)
    ds = load_dataset("cifar10").subset(8000, 2000, seed=14)
    tasks = []
    for s, a_seed in zip(s_values, att_seeds):
        att = attack_from_name("wanet", 3, 10, ds.image_shape, seed=a_seed, s=s)
        tasks.append({"arch": "resnet", "dataset": ds, "attack": att, "seed": 14})
    out = []
    for s, a_seed, (res, _) in zip(s_values, att_seeds, train_many(tasks, jobs=len(tasks))):
        row = {"s": s, "attack_seed": a_seed, "clean_acc": res.clean_acc, "asr": res.asr, "seconds": res.seconds}
        print(json.dumps(row), flush=True)
        out.append(row)
