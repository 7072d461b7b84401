#!/usr/bin/env bash
# Fetch the onnxruntime shared library for the optional `ort` backend of facelens-infer.
#
# Usage: scripts/fetch-onnxruntime.sh [DEST]      (DEST defaults to third_party/onnxruntime/)
#
# The library comes out of the official onnxruntime Python wheel, fetched with `pip download`
# from whatever package index pip is configured to use; nothing else is downloaded. The wheel
# bundles a self-contained libonnxruntime.so.<version> (CPU execution provider only).
#
# Version: ort 2.0.0-rc.15 is built against ONNX Runtime 1.31 (its own prebuilt binaries are
# 1.31.0). With the features facelens enables it requests C API version 17, so any 1.17+ library
# loads, but 1.31.0 is the version this ort release ships and is tested with.
set -euo pipefail

ORT_VERSION="1.31.0"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$repo_root/third_party/onnxruntime}"

if command -v pip >/dev/null 2>&1; then
    pip_cmd=pip
elif command -v pip3 >/dev/null 2>&1; then
    pip_cmd=pip3
else
    echo "error: pip (or pip3) is required" >&2
    exit 1
fi
if ! command -v unzip >/dev/null 2>&1 && ! command -v python3 >/dev/null 2>&1; then
    echo "error: unzip or python3 is required" >&2
    exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "downloading onnxruntime==$ORT_VERSION wheel with pip..." >&2
"$pip_cmd" download "onnxruntime==$ORT_VERSION" --no-deps --only-binary=:all: -d "$tmp" >&2

shopt -s nullglob
wheels=("$tmp"/onnxruntime-"$ORT_VERSION"-*.whl)
if [ "${#wheels[@]}" -ne 1 ]; then
    echo "error: expected one onnxruntime wheel in $tmp, found ${#wheels[@]}" >&2
    exit 1
fi

if command -v unzip >/dev/null 2>&1; then
    unzip -q "${wheels[0]}" 'onnxruntime/capi/libonnxruntime.so*' -d "$tmp/wheel" || true
else
    python3 - "${wheels[0]}" "$tmp/wheel" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in z.namelist():
        if n.startswith("onnxruntime/capi/libonnxruntime.so"):
            z.extract(n, sys.argv[2])
PY
fi
libs=("$tmp"/wheel/onnxruntime/capi/libonnxruntime.so.*)
if [ "${#libs[@]}" -eq 0 ]; then
    echo "error: no libonnxruntime.so.* in ${wheels[0]##*/} (is this a Linux wheel?)" >&2
    exit 1
fi

mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
cp -f "${libs[@]}" "$dest/"

# Prefer the fully versioned name (libonnxruntime.so.1.31.0) for ORT_DYLIB_PATH.
lib="$dest/libonnxruntime.so.$ORT_VERSION"
if [ ! -f "$lib" ]; then
    lib="$dest/$(basename "${libs[0]}")"
fi

echo "installed $(basename "$lib") into $dest" >&2
echo "export ORT_DYLIB_PATH=$lib"
