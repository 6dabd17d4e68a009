mkdir -p /etc/OpenCL/vendors; echo libnvidia-opencl.so.1 > /etc/OpenCL/vendors/nvidia.icd
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD
ws() { python3 -c "from experiments.cli import main; main()" "$@"; }
M=gpt2,mobilenetv2,resnet50,bert-base,vit-b16
ws validate check --device nvidia --profile calibrated-nvidia-h200 --out $OUT/check.json 2>&1 | grep -E "^\| (hop|stor|host)|drifted|holds"
ws validate calibrate --refit $OUT/check.json --base calibrated-nvidia-h200 --out $OUT/refit.yaml 2>&1 | tail -1
ws validate compare --device nvidia --set zoo --models $M --profile calibrated-nvidia-h200 --repeats 3 --out /tmp/shipped --save-replays /tmp/r1 2>&1 | grep -E "End-to-end MAPE|Per-op MAPE by resource"
ws validate compare --device nvidia --set zoo --models $M --profile $OUT/refit.yaml --repeats 3 --out /tmp/refit --save-replays /tmp/r2 2>&1 | grep -E "End-to-end MAPE|Per-op MAPE by resource"
ws validate check --device nvidia --profile $OUT/refit.yaml --out $OUT/check2.json 2>&1 | grep -E "drifted|holds"
tar czf $OUT/replays.tgz -C /tmp r1 r2 shipped refit
