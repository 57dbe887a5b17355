#!/usr/bin/env bash
# Pack what tools/gpu_live/loop.py needs on a GPU machine into .h8live/ (an ignored folder
# that travels with the run): tritonserver trimmed from the installed nvidia-pytriton wheel
# (binary, libraries, Python backend, the 3.12 stub) and the Python 3.12 wheels sentinel
# needs there beyond what that image has. Run from the repository root, in the dev venv.
set -euo pipefail
py=.venv/bin/python
site=$($py -c 'import pytriton, pathlib; print(pathlib.Path(pytriton.__file__).parent.parent)')
out=.h8live
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out" "$work/pytriton/tritonserver/backends" "$work/pytriton/tritonserver/python_backend_stubs"
cp -r "$site/pytriton/tritonserver/bin" "$work/pytriton/tritonserver/"
cp -r "$site/pytriton/tritonserver/backends/python" "$work/pytriton/tritonserver/backends/"
rm -rf "$work/pytriton/tritonserver/backends/python/__pycache__"
cp -r "$site/pytriton/tritonserver/python_backend_stubs/3.12" "$work/pytriton/tritonserver/python_backend_stubs/"
cp -r "$site/nvidia_pytriton.libs" "$work/"
rm -f "$work"/nvidia_pytriton.libs/libpython3-*   # the 3.13 stub's; nothing else links it
echo '"""Trimmed nvidia-pytriton: tritonserver, the Python backend and the 3.12 stub."""' \
  > "$work/pytriton/__init__.py"
tar -C "$work" -cJf "$out/triton-trim.tar.xz" pytriton nvidia_pytriton.libs
version() { $py -c "import importlib.metadata as m; print(m.version('$1'))"; }
$py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$out" "pydantic==$(version pydantic)" "pydantic-core==$(version pydantic-core)" \
  annotated-types typing-inspection structlog sortedcontainers shtab \
  "tritonclient==$(version tritonclient)" python-rapidjson "protobuf==$(version protobuf)"
du -sh "$out"
