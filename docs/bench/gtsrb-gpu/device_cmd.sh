# Run on the device machine from the repository root, with .devdata/ (gtsrb.npz.xz, this file) carried:
# zoos s900 (all-to-all) and s901 (WaNet) side by side; env T/C/N/E/J/D shrink it for a dry run on CPU.
set -x; nvidia-smi -L; date; python3 -c "import torch,transformers;print(torch.__version__,transformers.__version__,torch.cuda.is_available())"
mkdir -p /tmp/data; python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('.devdata/gtsrb.npz.xz'),open('/tmp/data/gtsrb.npz','wb'))"
export MODELSCAN_BD_DATA=/tmp/data PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
for a in all_to_all:900 wanet:901; do n=${a%%:*}; s=${a##*:}; (timeout ${T:-500} python3 -m modelscan_bd.cli zoo build classifiers --data gtsrb --out /tmp/z-$n --clean ${C:-3} --backdoored ${C:-3} --attacks $n --train-size ${N:-15000} --epochs ${E:-100} --jobs ${J:-6} --seed $s --min-asr 0.75 --device ${D:-cuda} > $OUT/log-$n.txt 2>&1; echo rc=$? >> $OUT/log-$n.txt) & done; wait; date
for n in all_to_all wanet; do tar czf $OUT/z-$n.tgz -C /tmp z-$n; cat $OUT/log-$n.txt | tail -12; done; ls -la $OUT
