#!/usr/bin/env bash
# Installs everything vkllm needs to build and test on Debian 12, from Debian's packages only.
# Idempotent: packages already present are skipped without touching apt.
set -euo pipefail
packages=(
  build-essential clang cmake ninja-build pkg-config
  libvulkan-dev libvulkan-volk-dev        # Vulkan headers/loader and volk (meta-loader)
  glslc glslang-tools spirv-tools         # GLSL -> SPIR-V at build time
  libcmocka-dev                           # tests
  libmicrohttpd-dev libcjson-dev curl     # vkllm serve (HTTP, JSON) and its test
  python3                                 # bench/serve_load.py, the load test in CTest
  mesa-vulkan-drivers                     # lavapipe: the Vulkan device of machines without a GPU
  vulkan-validationlayers                 # Khronos validation layer, on in every test
  vulkan-tools
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm run llama.cpp beside vkllm in the test peer_loads_files; any node already installed will do
# (NodeSource's nodejs carries its own npm, which Debian's npm package would conflict with).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
echo "vkllm dependencies: all installed"
