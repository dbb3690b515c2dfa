#!/usr/bin/env bash
# On a lent GPU machine (no network), from the repository root with .gpu/ carried
# (bench/device_prep.sh): build llama.cpp with CUDA once for both our engine (its shared
# library, loaded through LLAMA_CPP_LIB_PATH) and the reference llama-server, run the
# GPU tests, then bench/batching.py. Results go to $OUT (or ./device-out).
set -uo pipefail
export PYTHONUNBUFFERED=1
out=${OUT:-$PWD/device-out}; mkdir -p "$out"
t0=$(date +%s); stamp() { echo "== $(( $(date +%s) - t0 ))s: $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.gpu/pylib:$PWD
stamp "wheels installed"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
mkdir -p /tmp/llama && tar xzf .gpu/llama-src-slim.tgz -C /tmp/llama || exit 1
cmake -S /tmp/llama/llama.cpp -B /tmp/llama/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" -DBUILD_SHARED_LIBS=ON \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  > "$out/cmake.log" 2>&1 || { tail -40 "$out/cmake.log"; exit 1; }
cmake --build /tmp/llama/build --target llama llama-server -j"$(nproc)" > "$out/build.log" 2>&1 \
  || { tail -60 "$out/build.log"; exit 1; }
stamp "llama.cpp built"
export LLAMA_CPP_LIB_PATH=/tmp/llama/build/bin LD_LIBRARY_PATH=/tmp/llama/build/bin:${LD_LIBRARY_PATH:-}
python3 -c "import llama_cpp; print('gpu offload:', llama_cpp.llama_supports_gpu_offload())"
python3 -m appliance.cli doctor 2>&1 | head -30
timeout "${BENCH_TIMEOUT:-240}" python3 bench/batching.py --llama-server-bin /tmp/llama/build/bin \
  --gpu-layers 99 --threads 8 --context 4096 --slots 4 --levels 1,4,8 --max-tokens 128 \
  --doc-words 600 --rounds "${ROUNDS:-3}" --cache /tmp/bench-cache --json "$out/batching-gpu.json" \
  2>&1 | grep -v "converting to\|type = *f32, size\|^llama_model_loader" > "$out/batching-gpu.log"
grep -E "round|TTFT|aggregate tok" "$out/batching-gpu.log"; tail -30 "$out/batching-gpu.log"
stamp "bench done"
timeout "${TEST_TIMEOUT:-150}" python3 -m pytest -q -p no:cacheprovider \
  tests/engines/test_gpu.py tests/engines/test_batching_e2e.py 2>&1 | tail -25
stamp "tests done"
timeout "${REPEAT_TIMEOUT:-120}" python3 bench/repeatability.py --gpu-layers 99 --threads 8 \
  --cache /tmp/bench-cache --runs 4 --json "$out/repeatability-gpu.json" 2>&1 | tail -30
stamp "repeatability done"
