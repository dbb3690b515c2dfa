#!/usr/bin/env bash
# Prepares .gpu/ (git-ignored) for bench/device_run.sh on a lent GPU machine that reaches
# no network: llama.cpp's sources at our llama-cpp-python version (slimmed under the
# transfer limit), llama-cpp-python's pure-Python package, and the wheels of what the
# daemon needs that the machine's image lacks (Python 3.12).
#
#   bench/device_prep.sh     # then: run bench/device_run.sh there, carrying .gpu
set -euo pipefail
cd "$(dirname "$0")/.."
ver=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))')
grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/whl .gpu/pylib .gpu/dl
python3 -m pip download -q --no-deps --no-binary :all: -d .gpu/dl "llama-cpp-python==$ver"
tar xzf .gpu/dl/llama_cpp_python-"$ver".tar.gz -C .gpu/dl
src=.gpu/dl/llama_cpp_python-$ver
tar czf .gpu/llama-src-slim.tgz -C "$src/vendor" \
  --exclude=llama.cpp/models --exclude=llama.cpp/docs --exclude=llama.cpp/tools/ui/src \
  --exclude=llama.cpp/tools/ui/tests --exclude=llama.cpp/media --exclude=llama.cpp/benches \
  --exclude=llama.cpp/tests --exclude=llama.cpp/.git llama.cpp
cp -r "$src/llama_cpp" .gpu/pylib/ && rm -rf .gpu/pylib/llama_cpp/server
rm -rf .gpu/dl
pkgs=$(.venv/bin/python - <<'PY'
import importlib.metadata as m
names = ["starlette", "uvicorn", "gguf", "huggingface-hub", "httpx2", "httpcore2", "openai",
         "diskcache", "platformdirs", "pydantic", "pydantic-core", "jiter", "sniffio",
         "truststore", "annotated-types", "typing-inspection"]
print(" ".join(f"{n}=={m.version(n)}" for n in names))
PY
)
for p in $pkgs; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .gpu/whl "$p"
done
du -sh .gpu
