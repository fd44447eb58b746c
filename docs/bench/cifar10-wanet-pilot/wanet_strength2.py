"""WaNet at s=4: more epochs, or fewer noise-mode samples?  args: json list of {s, seed, epochs, cross_ratio}"""
import json, sys
from modelscan_bd.data import load_dataset
from modelscan_bd.zoo.attacks import attack_from_name
from modelscan_bd.zoo.train import train_many

if __name__ == '__main__':
    configs = json.loads(sys.argv[1])
    ds = load_dataset("cifar10").subset(8000, 2000, seed=14)
    tasks = [{"arch": "resnet", "dataset": ds, "seed": 14, "epochs": c["epochs"],
              "attack": attack_from_name("wanet", 3, 10, ds.image_shape, seed=c["seed"], s=c["s"],
                                         cross_ratio=c["cross_ratio"])} for c in configs]
    for c, (res, _) in zip(configs, train_many(tasks, jobs=len(tasks))):
        print(json.dumps({**c, "clean_acc": res.clean_acc, "asr": res.asr, "seconds": res.seconds}), flush=True)
