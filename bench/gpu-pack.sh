#!/usr/bin/env bash
# bench/gpu-pack.sh: prepares .gpu/, what a GPU machine without a Vulkan loader, a compiler or a network needs
# to run bench/gpu-check.sh (docs/gpu.md).  Run it here, from the checkout that will be sent, after the last
# merge (the build is of this working tree):
#
#   bench/gpu-pack.sh          # then run `bash bench/gpu-check.sh` there with carry [".gpu"]
#
# .gpu/ (ignored by git) holds:
#   debs/         Debian 12 amd64 packages: the Vulkan loader and glvnd (the NVIDIA ICD needs both; unpacked
#                 into / there), vulkan-validationlayers and libcmocka0 (unpacked into a private folder there)
#   build.tar.xz  build/: vkllm, sample-*, tests/test_* (Release, -Werror), built in ./build-gpu
#   llama.tar.xz  llama/: llama.cpp's llama-bench on its Vulkan backend with exactly the libraries it loads
#                 (from $PEER_HOME/vulkan, default ~/.cache/llama-peer: ../shared/peer/setup.sh --tools)
#   shared/models/ stories260K.gguf, stories260K.bin, tok512.bin, tokenizer.bin (the tests' models; ../shared
#                 does not travel)
#   lib/          libcmocka.so.0
#   MANIFEST      commit, date, sizes
# and fails when the working tree that travels plus .gpu exceeds 60 MiB (the limit is 64 MiB).
# Environment: PEER_HOME, SHARED_DIR (default ../shared beside the checkout), GPU_BUILD_DIR (default build-gpu),
# JOBS (ninja's, default 2).  Takes 1-10 minutes (the build; ccache shares objects with other checkouts).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
out=$repo/.gpu
build=${GPU_BUILD_DIR:-$repo/build-gpu}
peer_home=${PEER_HOME:-$HOME/.cache/llama-peer}
shared=${SHARED_DIR:-$(cd "$repo/../shared" 2>/dev/null && pwd || echo "$repo/../shared")}
limit_mib=60

say() { echo "gpu-pack: $*" >&2; }
die() { say "$*"; exit 1; }

git check-ignore -q .gpu/x || die ".gpu/ is not ignored by git (.gitignore needs /.gpu/): it would travel twice"
[[ $(uname -m) == x86_64 ]] || die "the GPU machine is x86-64; this machine is $(uname -m)"
for tool in cmake ninja xz tar apt-get; do command -v $tool >/dev/null || die "needs $tool"; done
[[ -r $shared/models/stories260K.gguf ]] || die "no $shared/models/stories260K.gguf (set SHARED_DIR)"
[[ -x $peer_home/vulkan/llama-bench ]] ||
    die "no llama-bench at $peer_home/vulkan: run ../shared/peer/setup.sh --tools (or set PEER_HOME)"

rm -rf "$out"
mkdir -p "$out/debs" "$out/lib" "$out/shared/models"

# ---- Debian packages, downloaded with a private apt state (amd64 lists of their own) -------------------
lists=/tmp/vkllm-gpu-apt-lists
mkdir -p "$lists/partial"
apt_opts=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
packages=(libvulkan1 libglvnd0 libglx0 libegl1 libgl1 libopengl0 libgles2 vulkan-validationlayers libcmocka0)
# Kept in a cache folder between packs (downloaded again only when one is missing there).
debs_cache=${XDG_CACHE_HOME:-$HOME/.cache}/vkllm-gpu-pack/debs
mkdir -p "$debs_cache"
have_all() { local p; for p in "${packages[@]}"; do compgen -G "$debs_cache/${p}_*.deb" >/dev/null || return 1; done; }
# (apt warns that root downloads unsandboxed into a folder _apt cannot write: harmless, filtered)
quiet_apt() { apt-get "${apt_opts[@]}" "$@" 2>&1 >/dev/null | { grep -v -e 'unsandboxed as root' -e '^N: ' >&2 || true; }; }
if ! have_all; then
    say "downloading ${packages[*]}"
    rm -f "$debs_cache"/*.deb
    if ! (cd "$debs_cache" && apt-get "${apt_opts[@]}" download "${packages[@]}" >/dev/null 2>&1); then
        quiet_apt update || die "apt-get update failed"
        (cd "$debs_cache" && quiet_apt download "${packages[@]}") || die "apt-get download failed"
    fi
fi
have_all || die "missing packages in $debs_cache"
for p in "${packages[@]}"; do cp "$debs_cache/${p}"_*.deb "$out/debs/"; done

# ---- vkllm, its tests and samples ----------------------------------------------------------------------
say "building into $build"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache)
export CCACHE_BASEDIR=$repo # paths relative to the checkout: cache hits from other checkouts of the same sources
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVKLLM_WERROR=ON -DVKLLM_BUILD_TESTS=ON \
    "${launcher[@]}" >/dev/null
ninja -C "$build" -j"${JOBS:-2}" >/dev/null || die "build failed (ninja -C $build)"
stage=$(mktemp -d /tmp/vkllm-gpu-pack-XXXXXX)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/build/tests"
cp "$build/vkllm" "$stage/build/"
for f in "$build"/sample-*; do [[ -x $f && -f $f ]] && cp "$f" "$stage/build/"; done
for f in "$build"/tests/test_*; do [[ -x $f && -f $f ]] && cp "$f" "$stage/build/tests/"; done
cp "$repo/tests/cli/peer_loads.sh" "$stage/build/tests/" 2>/dev/null || true
strip --strip-debug "$stage/build/vkllm" "$stage"/build/sample-* "$stage"/build/tests/test_* 2>/dev/null || true
tar -C "$stage" -cJf "$out/build.tar.xz" build
tests=("$stage"/build/tests/test_*)
say "build.tar.xz: ${#tests[@]} test programs, $(du -h "$out/build.tar.xz" | cut -f1)"

# ---- llama.cpp's llama-bench (Vulkan) with exactly the libraries it loads -------------------------------
# llama-bench -> libllama-bench-impl.so -> libllama-common.so.0, libllama.so.0, libggml.so.0, libggml-base.so.0;
# libllama.so.0 -> libggml.vulkan.v0.4.0.so, libggml-base.so; libggml loads the backends libggml-vulkan.so and
# one libggml-cpu-*.so from the executable's folder.  Same files under two names travel as one plus a link.
src=$peer_home/vulkan
mkdir -p "$stage/llama"
for f in llama-bench libllama-bench-impl.so libllama-common.so.0 libllama.so.0 libggml.so.0 libggml-base.so \
         libggml-vulkan.so libggml-cpu-x64.so; do
    [[ -e $src/$f ]] || die "no $src/$f"
    cp -L "$src/$f" "$stage/llama/$f"
done
ln -s libllama.so.0 "$stage/llama/libllama.vulkan.v0.4.0.so"
ln -s libggml.so.0 "$stage/llama/libggml.vulkan.v0.4.0.so"
ln -s libggml-base.so "$stage/llama/libggml-base.so.0"
missing=$(cd "$stage/llama" && LD_LIBRARY_PATH=. ldd ./llama-bench ./*.so* 2>/dev/null | grep "not found" | grep -v libvulkan || true)
[[ -z $missing ]] || die "llama-bench libraries missing: $missing"
tar -C "$stage" -cJf "$out/llama.tar.xz" llama
say "llama.tar.xz: $(du -h "$out/llama.tar.xz" | cut -f1)"

# ---- models for the tests, cmocka ------------------------------------------------------------------------
for f in stories260K.gguf stories260K.bin tok512.bin tokenizer.bin; do
    [[ -r $shared/models/$f ]] && cp "$shared/models/$f" "$out/shared/models/"
done
cmocka=$(ldd "$build/tests/test_runtime" | awk '/libcmocka/ { print $3 }')
[[ -r $cmocka ]] || die "libcmocka.so.0 not found (ldd $build/tests/test_runtime)"
cp -L "$cmocka" "$out/lib/libcmocka.so.0"

# ---- manifest and size ---------------------------------------------------------------------------------
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
tree_bytes=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null || true) |
    awk '{ s += $1 } END { print s + 0 }')
gpu_bytes=$(du -sb "$out" | cut -f1)
{
    echo "commit $commit$dirty"
    echo "packed $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
    echo "working tree $tree_bytes bytes, .gpu $gpu_bytes bytes"
    (cd "$out" && find . -type f ! -name MANIFEST -printf '%P %s\n' | sort)
} >"$out/MANIFEST"
total=$((tree_bytes + gpu_bytes))
say "working tree $((tree_bytes / 1024)) KiB + .gpu $((gpu_bytes / 1024)) KiB = $((total / 1048576)) MiB" \
    "(limit ${limit_mib} MiB; the tool's is 64)"
((total <= limit_mib * 1048576)) || die "too large to travel: $((total / 1048576)) MiB > ${limit_mib} MiB"
say "ready: run 'bash bench/gpu-check.sh' on the GPU machine with carry [\".gpu\"]"
