#!/usr/bin/env bash
# bench/kv-gpu.sh: the quantized KV cache on a lent GPU machine, in one short call (docs/kv-cache.md): the
# setup of bench/gpu-check.sh (loader, ICD, validation layer, from .gpu of bench/gpu-pack.sh), then the cache's
# tests with the validation layer, perplexity / KL per cache type on stories260K, and decode tokens/s at
# contexts 512 and 4096 per type on llama-134m Q4_0 (synthesized there).
#   here:  bench/gpu-pack.sh       there (device tool): bash bench/kv-gpu.sh, carry [".gpu"], timeout_s 330
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
gpu=$repo/.gpu
OUT=${OUT:-/tmp/vkllm-kv-gpu-out}
work=$(mktemp -d /tmp/vkllm-kv-gpu-XXXXXX)
mkdir -p "$OUT"
LOG=$OUT/kv-gpu.log
log() { echo "[$(date +%T)] $*" | tee -a "$LOG"; }
deb_x() { # DEB DEST (dpkg -x, or python3 where dpkg is missing)
    if command -v dpkg >/dev/null 2>&1; then dpkg -x "$1" "$2"; else python3 - "$1" "$2" <<'PY'
import io, sys, tarfile
data = open(sys.argv[1], "rb").read(); pos = 8
while pos + 60 <= len(data):
    name = data[pos:pos + 16].decode().strip().rstrip("/"); size = int(data[pos + 48:pos + 58].decode().strip())
    body = data[pos + 60:pos + 60 + size]; pos += 60 + size + (size & 1)
    if name.startswith("data.tar"): tarfile.open(fileobj=io.BytesIO(body)).extractall(sys.argv[2])
PY
    fi
}
tar -C "$work" -xJf "$gpu/build.tar.xz" || python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$gpu/build.tar.xz" "$work"
root=$work/root
mkdir -p "$root"
for f in "$gpu"/debs/vulkan-validationlayers_*.deb "$gpu"/debs/libcmocka0_*.deb; do deb_x "$f" "$root"; done
for pkg_lib in libvulkan1:libvulkan.so.1 libglvnd0:libGLdispatch.so.0 libglx0:libGLX.so.0 libegl1:libEGL.so.1 \
               libgl1:libGL.so.1 libopengl0:libOpenGL.so.0 libgles2:libGLESv2.so.2; do
    pkg=${pkg_lib%%:*} lib=${pkg_lib#*:}
    ldconfig -p 2>/dev/null | grep -q -F "$lib " && continue
    for f in "$gpu"/debs/"${pkg}"_*.deb; do [[ -e $f ]] && deb_x "$f" /; done
done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[[ -r $icd ]] || icd=$(find /usr/local/nvidia /usr/share/vulkan /etc/vulkan /usr/lib /opt -name 'nvidia_icd*.json' 2>/dev/null | head -1)
[[ -n $icd ]] && export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[[ -r $egl ]] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
export LD_LIBRARY_PATH=$gpu/lib:$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export VK_LAYER_PATH=$root/usr/share/vulkan/explicit_layer.d XDG_CACHE_HOME=$work/cache
export VKLLM_SHARED_DIR=$gpu/shared VKLLM_TEST_DATA=$repo/tests/data VKLLM_BINARY_DIR=$work/build
VK=$work/build/vkllm
stories=$gpu/shared/models/stories260K.gguf
m134=$work/llama-134m-q4_0.gguf
"$VK" devices 2>&1 | grep -E "chosen|^ *name" | head -3 | tee -a "$LOG"
"$VK" synth --preset llama-134m --type Q4_0 -o "$m134" >/dev/null 2>&1 &
synth=$!

log "== tests (VKLLM_VALIDATION=1)"
for t in test_ops_kv_quant test_ops_flash_attn test_model; do
    start=$SECONDS
    VKLLM_VALIDATION=1 timeout 100 "$work/build/tests/$t" >"$OUT/$t.log" 2>&1
    rc=$?
    log "$t: rc $rc in $((SECONDS - start)) s: $(grep -E 'PASSED|FAILED' "$OUT/$t.log" | tail -1)"
    grep -E "nmse|ERROR|LINE" "$OUT/$t.log" | grep -E "K q|rotated|ERROR|LINE" | head -40 >>"$LOG"
done

text=$repo/tests/data/stories-eval.txt
[[ -r $text ]] || text=$gpu/shared/data/stories-eval.txt
if [[ -r $text ]]; then
    log "== perplexity, stories260K"
    "$VK" perplexity -m "$stories" -f "$text" --kv f32 --json 2>&1 | tail -1 | tee -a "$LOG"
    "$VK" perplexity -m "$stories" -f "$text" --kv f16 --kl-base "$work/base.kld" --json 2>&1 | tail -1 | tee -a "$LOG"
    for kv in "q8_0 q8_0 on" "q8_0 q8_0 off" "q4_0 q4_0 on" "q4_0 q4_0 off" "q8_0 q4_0 on"; do
        set -- $kv
        "$VK" perplexity -m "$stories" -f "$text" --kv-k "$1" --kv-v "$2" --kv-rotate "$3" --kl "$work/base.kld" --json 2>&1 | tail -1 | tee -a "$LOG"
    done
else
    log "no stories-eval.txt travelled: perplexity skipped"
fi

wait $synth
log "== decode tokens/s at a filled context, llama-134m Q4_0"
for depth in 512 4096; do
    for kv in "f16 f16" "q8_0 q8_0" "q4_0 q4_0" "q8_0 q4_0"; do
        set -- $kv
        printf 'd=%s k=%s v=%s ' "$depth" "$1" "$2" | tee -a "$LOG"
        timeout 60 "$VK" bench -m "$m134" -p 0 -n 128 -d "$depth" -r 3 --kv-k "$1" --kv-v "$2" --no-ttft --json 2>&1 | tail -1 | tee -a "$LOG"
    done
done
log "done"
