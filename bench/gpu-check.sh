#!/usr/bin/env bash
# bench/gpu-check.sh: the one-shot check of vkllm on a lent GPU machine (docs/gpu.md), run from the repository
# root there after bench/gpu-pack.sh prepared .gpu/ here:
#
#   bash bench/gpu-check.sh [--dry-run] [--quick] [--focus] [--budget SECONDS]
#
# Steps, each under its own timeout, all inside one global budget (default 420 s; the steps left when it runs
# out are skipped, and the summary says so), in this order:
#   setup     unpack .gpu (the build, llama-bench); the Vulkan loader and glvnd into / where the machine has no
#             loader; the validation layer and cmocka into a private folder; the NVIDIA ICD; vkllm devices;
#             nvidia-smi
#   synth     vkllm synth of llama-134m Q4_0, llama2-7b Q4_0 and Q8_0, tinyllama-1.1b Q4_K_M, in the background
#   tests     the Vulkan test programs with the validation layer (op tests, then model and CLI tests), 6 at a
#             time, for at most 100 s (the slowest, test_ops_fused and _matmul_variants, last)
#   bench-ops mat-vec / mat-mul per type at shapes beyond the L2 (weights rotated), with the copy bandwidth
#   e2e       vkllm bench and llama.cpp's llama-bench (Vulkan, -ngl 99), -p 512 -n 128 -r 3, alternated per
#             model: llama-134m Q4_0 twice, llama2-7b Q4_0, tinyllama-1.1b Q4_K_M
#   profile   VKLLM_PROFILE=1 vkllm bench --profile on llama2-7b Q4_0 (-p 512 -n 32)
#   sweeps    mat-vec tuning (matvec_rows x matvec_split [x matvec_int_dot]), coopmat_* fields if present
#   e2e       llama2-7b Q8_0, then second rounds of the big models, while the budget lasts
# Output, in $OUT (default /tmp/vkllm-gpu-out): gpu-check.log (everything), summary.md (the tables),
# results.tar.gz (every step's own log and JSON); the summary is printed at the end too.
# --dry-run (also chosen when nvidia-smi finds no GPU): the same steps at toy sizes on whatever Vulkan device
# there is (lavapipe here): stories260K and llama-134m only, six tests, short benchmarks, a small sweep.
# --quick: no tests (a rerun of the benchmarks).
# --focus: a short second call after a change: llama-134m and llama2-7b Q4_0 only, the tests of the mat-vec,
#          the norms and the model, bench-ops at the decode shapes, vkllm alone under a few tuning overrides
#          (FOCUS_TUNES, ';'-separated VKLLM_TUNE values) on llama2-7b, and a small sweep of the mat-vec split.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 2
T0=$(date +%s)
mode=auto quick=0 focus=0 budget=
while (($#)); do
    case $1 in
        --dry-run) mode=dry; shift ;;
        --quick) quick=1; shift ;;
        --focus) focus=1; shift ;;
        --budget) budget=${2:?}; shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "gpu-check: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ -d /usr/local/nvidia/bin ]] && PATH=$PATH:/usr/local/nvidia/bin
if [[ $mode == auto ]]; then
    if { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; } || [[ -e /dev/nvidia0 ]]; then
        mode=gpu
    else
        mode=dry
    fi
fi
budget=${budget:-$([[ $mode == gpu ]] && echo 420 || echo 360)}
DEADLINE=$((T0 + budget))
RESERVE=12 # seconds kept for the summary and the archive

OUT=${OUT:-/tmp/vkllm-gpu-out}
mkdir -p "$OUT"
work=${GPU_CHECK_WORK:-/tmp/vkllm-gpu}
rm -rf "$work"
mkdir -p "$work"/{logs,tests,models,cache,test-cache,testrun}
LOG=$OUT/gpu-check.log
: >"$LOG"
STEPS=$work/steps.tsv
: >"$STEPS"
gpu=$repo/.gpu

log() { printf '[%4ds] %s\n' $(($(date +%s) - T0)) "$*" | tee -a "$LOG"; }
show() { tee -a "$LOG" <"$1"; } # a step's output into the main log (and stdout)
left() { echo $((DEADLINE - $(date +%s) - RESERVE)); }
note_step() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >>"$STEPS"; }

# run_step NAME SECONDS CMD...: CMD under timeout (SECONDS, or what the budget leaves), output in
# $work/logs/NAME.log; returns CMD's status, 125 when skipped for the deadline.
run_step() {
    local name=$1 want=$2
    shift 2
    local t=$want l
    l=$(left)
    ((t > l)) && t=$l
    if ((l < 5)); then
        note_step "$name" "skipped (deadline)" 0
        log "SKIP $name: the global budget is spent"
        return 125
    fi
    local s rc d status
    s=$(date +%s)
    timeout -k 5 "$t" "$@" >"$work/logs/$name.log" 2>&1
    rc=$?
    d=$(($(date +%s) - s))
    case $rc in
        0) status=ok ;;
        124|137) status="TIMEOUT after ${t}s" ;;
        *) status="failed (exit $rc)" ;;
    esac
    note_step "$name" "$status" "$d"
    log "$name: $status (${d}s)"
    return $rc
}

# ---- setup ------------------------------------------------------------------------------------------------
log "gpu-check: mode $mode$( ((quick)) && echo ", quick"), budget ${budget}s, repo $repo, OUT $OUT"
[[ -d $gpu ]] || { log "FATAL: no .gpu folder (run bench/gpu-pack.sh here, carry .gpu)"; exit 2; }
[[ -r $gpu/MANIFEST ]] && log "pack: $(head -2 "$gpu/MANIFEST" | tr '\n' ' ')"

untar() { # ARCHIVE DEST: tar.xz with tar, or python3 where xz is missing
    if command -v xz >/dev/null 2>&1; then
        tar -C "$2" -xJf "$1"
    else
        python3 -c 'import sys, tarfile
kw = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
tarfile.open(sys.argv[1]).extractall(sys.argv[2], **kw)' "$1" "$2"
    fi
}
deb_x() { # DEB DEST: dpkg -x, or python3 where dpkg is missing (an ar archive holding data.tar.*)
    if command -v dpkg >/dev/null 2>&1; then
        dpkg -x "$1" "$2"
    else
        python3 - "$1" "$2" <<'PY'
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
if data[:8] != b"!<arch>\n":
    sys.exit("not a .deb: " + sys.argv[1])
pos = 8
while pos + 60 <= len(data):
    name = data[pos:pos + 16].decode().strip().rstrip("/")
    size = int(data[pos + 48:pos + 58].decode().strip())
    body = data[pos + 60:pos + 60 + size]
    pos += 60 + size + (size & 1)
    if name.startswith("data.tar"):
        kw = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
        tarfile.open(fileobj=io.BytesIO(body)).extractall(sys.argv[2], **kw)
PY
    fi
}
untar "$gpu/build.tar.xz" "$work" || log "ERROR: could not unpack build.tar.xz"
untar "$gpu/llama.tar.xz" "$work" || log "ERROR: could not unpack llama.tar.xz"
VK=$work/build/vkllm
LLAMA=$work/llama/llama-bench

# The validation layer and cmocka go into a private root; the loader and glvnd into / (they must be found by
# the system's dynamic linker and by the NVIDIA ICD; only where the machine has no loader).
root=$work/root
mkdir -p "$root"
for f in "$gpu"/debs/vulkan-validationlayers_*.deb "$gpu"/debs/libcmocka0_*.deb; do
    [[ -e $f ]] && { deb_x "$f" "$root" 2>>"$LOG" || log "ERROR: could not unpack $f"; }
done
if [[ $mode == gpu ]]; then
    # Each package only where the system lacks its library (never over a newer one).
    unpacked=()
    for pkg_lib in libvulkan1:libvulkan.so.1 libglvnd0:libGLdispatch.so.0 libglx0:libGLX.so.0 libegl1:libEGL.so.1 \
                   libgl1:libGL.so.1 libopengl0:libOpenGL.so.0 libgles2:libGLESv2.so.2; do
        pkg=${pkg_lib%%:*} lib=${pkg_lib#*:}
        ldconfig -p 2>/dev/null | grep -q -F "$lib " && continue
        for f in "$gpu"/debs/"${pkg}"_*.deb; do
            [[ -e $f ]] || { log "ERROR: no package $pkg in .gpu/debs"; continue; }
            deb_x "$f" / 2>>"$LOG" && unpacked+=("$pkg") || log "ERROR: could not unpack $f into /"
        done
    done
    ldconfig
    log "unpacked into /: ${unpacked[*]:-nothing (the system has every library)}"
    icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    if [[ ! -r $icd ]]; then
        icd=$(find /usr/local/nvidia /usr/share/vulkan /etc/vulkan /usr/lib /opt -name 'nvidia_icd*.json' 2>/dev/null | head -1)
    fi
    if [[ -n $icd ]]; then export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd; log "ICD: $icd"; else log "ERROR: no nvidia_icd.json found"; fi
    egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    [[ -r $egl ]] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
else
    export GGML_VK_VISIBLE_DEVICES=0 # ggml skips CPU-type devices (lavapipe) without it
fi
libdir=$root/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$gpu/lib:$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export VK_LAYER_PATH=$root/usr/share/vulkan/explicit_layer.d
export XDG_CACHE_HOME=$work/cache
export VKLLM_SHARED_DIR=$gpu/shared VKLLM_TEST_DATA=$repo/tests/data VKLLM_BINARY_DIR=$work/build
export VKLLM_MODEL=$gpu/shared/models/stories260K.gguf
export STORIES=$VKLLM_MODEL work # read by test_cmd in the shell that timeout starts

run_step devices 30 "$VK" devices
show "$work/logs/devices.log"
if ! grep -q '\[chosen\]' "$work/logs/devices.log"; then
    log "ERROR: vkllm sees no device; the loader's view follows"
    VK_LOADER_DEBUG=error,warn,info timeout 20 "$VK" devices 2>&1 | head -80 | tee -a "$LOG"
    ldconfig -p | grep -i -E 'vulkan|GLX|EGL' | tee -a "$LOG"
fi
device_name=$(awk '/\[chosen\]/ { c = 1 } c && $1 == "name" { $1 = ""; sub(/^ +/, ""); print; exit }' "$work/logs/devices.log")
if [[ $mode == gpu ]] && command -v nvidia-smi >/dev/null 2>&1; then
    run_step nvidia-smi 20 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw,pstate --format=csv
    show "$work/logs/nvidia-smi.log"
fi

# The validation layer: the tests need it (VKLLM_VALIDATION=1, as under CTest).
validation=1
if ! VKLLM_VALIDATION=1 timeout 30 "$VK" bench-ops --fields >"$work/logs/fields.log" 2>&1; then
    validation=0
    log "WARNING: VKLLM_VALIDATION=1 fails ($(tail -1 "$work/logs/fields.log")): tests run without the layer"
    timeout 30 "$VK" bench-ops --fields >"$work/logs/fields.log" 2>&1
fi
has_field() { grep -q "^$1 " "$work/logs/fields.log"; }
log "tuning fields: $(awk '{ printf "%s=%s ", $1, $2 }' "$work/logs/fields.log")"

# ---- models, synthesized in the background ----------------------------------------------------------------
declare -A model_path model_pid
if [[ $mode == gpu ]]; then
    models=(llama-134m:Q4_0 llama2-7b:Q4_0 tinyllama-1.1b:Q4_K_M llama2-7b:Q8_0)
    ((focus)) && models=(llama-134m:Q4_0 llama2-7b:Q4_0)
else
    models=(llama-134m:Q4_0)
fi
for m in "${models[@]}"; do
    preset=${m%%:*} type=${m##*:} name=${m/:/-}
    path=$work/models/$name.gguf
    model_path[$name]=$path
    (
        s=$(date +%s)
        if timeout 300 "$VK" synth --preset "$preset" --type "$type" -o "$path.part" >"$work/logs/synth-$name.log" 2>&1; then
            mv "$path.part" "$path"
            echo "synth $name: $(($(date +%s) - s)) s, $(stat -c %s "$path") bytes" >>"$work/logs/synth-$name.log"
        fi
    ) &
    model_pid[$name]=$!
done
log "synthesizing ${models[*]} in the background"

# wait_model NAME: 0 when the model file is there, else 1 (its synth failed, or the budget ran out)
wait_model() {
    local name=$1
    while [[ ! -e ${model_path[$name]} ]]; do
        if ! kill -0 "${model_pid[$name]}" 2>/dev/null; then
            [[ -e ${model_path[$name]} ]] && return 0
            log "ERROR: synth of $name failed: $(tail -2 "$work/logs/synth-$name.log" | tr '\n' ' ')"
            return 1
        fi
        (($(left) < 20)) && { log "SKIP: $name not synthesized before the deadline"; return 1; }
        sleep 1
    done
    return 0
}

# ---- tests ------------------------------------------------------------------------------------------------
TEXT="Once upon a time, there was a little girl named Lily. She loved to play outside in the park."
IDS='"generated": \[426, 338, 286, 399, 393, 269, 282, 420, 277, 418, 426, 13, 441, 416, 411, 328\]'
# The command of each test: the test programs as CTest runs them, and the CLI tests of tests/cli/CMakeLists.txt.
test_cmd() {
    local B=$work/build
    case $1 in
        test_*) "$B/tests/$1" ;;
        cli_run) "$B/vkllm" run -m "$STORIES" -p "Once upon a time" -n 32 --temp 0 ;;
        sample_simple) "$B/sample-simple" "$STORIES" "Once upon a time" 32 ;;
        sample_logits) "$B/sample-logits" "$STORIES" -n 64 -m 16 --kv f32 ;;
        cli_bench_json) "$B/vkllm" bench -m "$STORIES" -p 16 -n 8 -r 1 --json ;;
        cli_bench_ops_sweep) "$B/vkllm" bench-ops --types Q4_0 --shapes 256x256 --mm-shapes 64x256 --ns 1,2 \
            --batches 16 --sweep matvec_rows=2,4 --runs 1 --min-ms 1 --rotate-mb 0 --json ;;
        *) echo "gpu-check: no test $1"; return 2 ;;
    esac
}
# What a passing test prints (beyond exiting 0 without a validation error).
test_pattern() {
    case $1 in
        cli_run|sample_simple) echo "$TEXT" ;;
        sample_logits) echo "$IDS" ;;
        cli_bench_json) echo '"pp_tps": [0-9]' ;;
        cli_bench_ops_sweep) echo '"config": "matvec_rows=4"' ;;
        *) echo "" ;;
    esac
}
# test_one NAME SECONDS: one test under timeout, its line into results.tsv and the log
test_one() {
    local name=$1 t=$2 pattern s rc status d
    pattern=$(test_pattern "$name")
    s=$(date +%s.%N)
    (cd "$work/testrun" && export VKLLM_VALIDATION=$validation CMOCKA_MESSAGE_OUTPUT=stdout \
        XDG_CACHE_HOME=$work/test-cache && timeout -k 5 "$t" bash -c "$(declare -f test_cmd); test_cmd $name") \
        >"$work/tests/$name.log" 2>&1
    rc=$?
    d=$(awk -v s="$s" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    if ((rc == 124 || rc == 137)); then status="TIMEOUT"
    elif ((rc != 0)); then status="FAIL"
    elif [[ $name != test_* ]] && grep -q "validation error" "$work/tests/$name.log"; then status="FAIL"
    elif [[ -n $pattern ]] && ! grep -E -q "$pattern" "$work/tests/$name.log"; then status="FAIL"
    else status="pass"; fi
    local why=""
    if [[ $status != pass ]]; then
        why=$(grep -E -m 3 'ERROR|FAIL|nmse|validation error|error:|Failure' "$work/tests/$name.log" | tr '|\n' '/ ' | cut -c1-300)
        [[ -z $why ]] && why=$(tail -2 "$work/tests/$name.log" | tr '|\n' '/ ' | cut -c1-300)
        [[ $status == TIMEOUT ]] && why="after ${t}s; last: $why"
    fi
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$d" "$why" >>"$work/tests/results.tsv"
    printf '[%4ds] test %-28s %-7s %6ss %s\n' $(($(date +%s) - T0)) "$name" "$status" "$d" "${why:0:160}" | tee -a "$LOG"
}

# run_tests PHASE_END PARALLEL NAME:SECONDS...: the tests in order, PARALLEL at a time, all ended by PHASE_END
run_tests() {
    local phase_end=$1 parallel=$2
    shift 2
    local pids=() e p live remaining name t
    : >"$work/tests/results.tsv"
    for e in "$@"; do
        while :; do
            live=0
            for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && live=$((live + 1)); done
            ((live < parallel)) && break
            sleep 0.3
        done
        name=${e%%:*} t=${e##*:}
        remaining=$((phase_end - $(date +%s)))
        ((t > remaining)) && t=$remaining
        if ((t < 5)); then
            printf '%s\tskipped (deadline)\t0\t\n' "$name" >>"$work/tests/results.tsv"
            log "test $name: skipped (the test phase's time is spent)"
            continue
        fi
        test_one "$name" "$t" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
}

if ((quick)); then
    note_step tests "skipped (--quick)" 0
else
    B=$work/build
    entries=()
    if [[ $mode == gpu ]]; then
        # Op tests first (the slow ones last), then the model tests; CPU-only tests are left out.
        for t in test_runtime test_tuning test_ops_elementwise test_ops_activation test_ops_argmax test_ops_convert \
                 test_ops_rms_norm test_ops_rope test_ops_get_rows test_ops_softmax test_ops_kv_write test_ops_flash_attn \
                 test_ops_matmul; do
            [[ -x $B/tests/$t ]] && entries+=("$t:100")
        done
        for f in "$B"/tests/test_ops_*; do # op tests added since this list was written
            n=$(basename "$f")
            case " ${entries[*]} " in *" $n:"*) continue ;; esac
            [[ $n == test_ops_fused || $n == test_ops_matmul_variants ]] || entries+=("$n:100")
        done
        entries+=(test_convert:30 test_model:120 cli_run:60 sample_simple:60 sample_logits:60 cli_bench_json:60 cli_bench_ops_sweep:60)
        for t in test_speculative test_host_device test_decode_async; do # the later subsystems' device tests
            [[ -x $B/tests/$t ]] && entries+=("$t:120")
        done
        [[ -x $B/tests/test_ops_fused ]] && entries+=(test_ops_fused:150)
        [[ -x $B/tests/test_ops_matmul_variants ]] && entries+=(test_ops_matmul_variants:150)
        test_budget=100 parallel=6
        if ((focus)); then
            entries=(test_ops_rms_norm:60 test_ops_flash_attn:80 test_ops_matmul_q8:80 test_ops_matmul:80
                     test_model:80 cli_run:40 sample_logits:40 test_ops_matmul_coopmat:80)
            test_budget=80
        fi
    else
        entries=(test_runtime:60 test_tuning:60 test_convert:30 test_ops_rms_norm:90 cli_run:60 cli_bench_ops_sweep:60)
        test_budget=90 parallel=2
    fi
    s=$(date +%s)
    phase_end=$((s + test_budget))
    ((phase_end > DEADLINE - RESERVE - 120)) && phase_end=$((DEADLINE - RESERVE - 120))
    log "tests: ${#entries[@]} programs, $parallel at a time, validation $validation, until +$((phase_end - s))s"
    run_tests "$phase_end" "$parallel" "${entries[@]}"
    npass=$(awk -F'\t' '$2 == "pass"' "$work/tests/results.tsv" | wc -l)
    note_step tests "$npass of ${#entries[@]} passed" $(($(date +%s) - s))
fi

# ---- bench-ops: the big shapes ---------------------------------------------------------------------------
if [[ $mode == gpu ]] && ((focus)); then
    run_step bench-ops 60 "$VK" bench-ops --json --runs 3 --min-ms 20 --types F16,Q8_0,Q4_0,Q4_K,Q6_K \
        --shapes 4096x4096,4096x11008,11008x4096,4096x14336 --mm-shapes 4096x4096,11008x4096 --batches 512
elif [[ $mode == gpu ]]; then
    run_step bench-ops 110 "$VK" bench-ops --json --runs 3 --min-ms 20
else
    run_step bench-ops 60 "$VK" bench-ops --json --quick --types Q4_0,F16 --ns 1,8 --runs 1 --min-ms 5
fi
show "$work/logs/bench-ops.log"
copy_gbps=$(awk -F'"gbps": ' '/"kind": "copy"/ { split($2, a, ","); print a[1] + 0 }' "$work/logs/bench-ops.log")
copy_gbps=${copy_gbps:-0}

# ---- end to end: vkllm bench and llama-bench, alternated ---------------------------------------------------
if [[ $mode == gpu ]]; then P=512 N=128 R=3; else P=64 N=16 R=1; fi
E2E=$work/e2e.tsv # model engine round test tokens/s
: >"$E2E"
# After vkllm bench times out on a model (a stall), it is not run again on a model as large or larger.
stall_bytes=0
declare -A vk_ok # models vkllm bench ran on
e2e_one() { # MODEL-NAME PATH ROUND ENGINE TIMEOUT [extra vkllm args]
    local name=$1 path=$2 round=$3 engine=$4 t=$5
    shift 5
    local step="e2e-$name-$engine-r$round" bytes
    bytes=$(stat -c %s "$path")
    if [[ $engine == vkllm ]]; then
        if ((stall_bytes > 0 && bytes >= stall_bytes)); then
            note_step "$step" "skipped (vkllm timed out on a model this size before)" 0
            return
        fi
        VKLLM_LOG=${VKLLM_LOG:-info} run_step "$step" "$t" "$VK" bench -m "$path" -p "$P" -n "$N" -r "$R" --json "$@"
        local rc=$?
        ((rc == 124 || rc == 137)) && ((stall_bytes == 0 || bytes < stall_bytes)) && stall_bytes=$bytes
        ((rc == 0)) && vk_ok[$name]=1
        awk -v m="$name" -v r="$round" '
            /"pp_tps"/ { match($0, /"pp_tps": [0-9.]+/); pp = substr($0, RSTART + 10, RLENGTH - 10)
                         match($0, /"tg_tps": [0-9.]+/); tg = substr($0, RSTART + 10, RLENGTH - 10)
                         match($0, /"model_bytes": [0-9]+/); b = substr($0, RSTART + 15, RLENGTH - 15)
                         printf "%s\tvkllm\t%s\tpp\t%s\n%s\tvkllm\t%s\ttg\t%s\n%s\tbytes\t0\tbytes\t%s\n", m, r, pp, m, r, tg, m, b }
        ' "$work/logs/$step.log" >>"$E2E"
    else
        (cd /tmp && run_step "$step" "$t" env LD_LIBRARY_PATH="$work/llama:$LD_LIBRARY_PATH" "$LLAMA" -m "$path" \
            -p "$P" -n "$N" -r "$R" -ngl 99 -o json)
        awk -F': ' -v m="$name" -v r="$round" '
            /"n_gen":/  { gen = $2 + 0 }
            /"avg_ts":/ { printf "%s\tllama\t%s\t%s\t%s\n", m, r, (gen == 0 ? "pp" : "tg"), $2 + 0 }
            /"gpu_info":/ { g = $2; gsub(/[",]/, "", g); print g > "/dev/stderr" }
        ' "$work/logs/$step.log" >>"$E2E" 2>"$work/llama-gpu.txt"
    fi
    log "  $engine $name round $round, tokens/s: $(awk -F'\t' -v m="$name" -v e="$engine" -v r="$round" \
        '$1 == m && $2 == e && $3 == r { printf "%s %s  ", $4, $5 }' "$E2E")"
    [[ -s $work/logs/$step.log ]] && ! grep -q -E 'pp_tps|avg_ts' "$work/logs/$step.log" &&
        log "  its log ends: $(tail -3 "$work/logs/$step.log" | tr '\n' ' ' | cut -c1-400)"
}
e2e_pair() { # NAME ROUND VKLLM_TIMEOUT LLAMA_TIMEOUT [extra vkllm args]
    local name=$1 round=$2 tv=$3 tl=$4
    shift 4
    wait_model "$name" || return
    printf '%s\tbytes\t0\tfile\t%s\n' "$name" "$(stat -c %s "${model_path[$name]}")" >>"$E2E"
    e2e_one "$name" "${model_path[$name]}" "$round" vkllm "$tv" "$@"
    e2e_one "$name" "${model_path[$name]}" "$round" llama "$tl"
}
if [[ $mode == gpu ]] && ((focus)); then
    e2e_pair llama-134m-Q4_0 1 45 60 --no-ttft
    e2e_pair llama2-7b-Q4_0 1 90 90 --no-ttft
    e2e_pair llama-134m-Q4_0 2 45 60 --no-ttft
    e2e_pair llama2-7b-Q4_0 2 60 60 --no-ttft
    # vkllm alone under tuning overrides, llama2-7b Q4_0: tokens/s beside the default's rounds above
    VARIANTS=$work/variants.tsv
    IFS=';' read -r -a tunes <<<"${FOCUS_TUNES:-attn_cm_min_tokens=4294967295;attn_cm_wg=64;attn_cm_wg=64,attn_cm_keys=16;row_wg=512}"
    for tune in "${tunes[@]}"; do
        [[ -n $tune ]] || continue
        step="e2e-variant-$(echo "$tune" | tr -c 'a-zA-Z0-9_=' '_')"
        VKLLM_TUNE=$tune run_step "$step" 40 "$VK" bench -m "${model_path[llama2-7b-Q4_0]}" -p "$P" -n "$N" -r 2 --json \
            --no-ttft
        awk -v t="$tune" '/"pp_tps"/ { match($0, /"pp_tps": [0-9.]+/); pp = substr($0, RSTART + 10, RLENGTH - 10)
                                        match($0, /"tg_tps": [0-9.]+/); tg = substr($0, RSTART + 10, RLENGTH - 10)
                                        printf "%s\t%s\t%s\n", t, pp, tg }' "$work/logs/$step.log" >>"$VARIANTS"
    done
elif [[ $mode == gpu ]]; then
    e2e_pair llama-134m-Q4_0 1 45 60 --no-ttft
    e2e_pair llama-134m-Q4_0 2 45 60
    e2e_pair llama2-7b-Q4_0 1 90 90 --no-ttft
    e2e_pair tinyllama-1.1b-Q4_K_M 1 60 60 --no-ttft
else
    model_path[stories260K]=$STORIES
    model_pid[stories260K]=$$
    e2e_pair stories260K 1 30 60 --no-ttft
    e2e_pair stories260K 2 30 60
    e2e_pair llama-134m-Q4_0 1 60 90 --no-ttft
fi

# ---- frame budget: the render loop beside generation on one device (issue 17, docs/embedding.md) -----------------
if [[ $mode == gpu && -x $B/sample-render-loop ]]; then
    if wait_model llama2-7b-Q4_0; then
        run_step render-loop 120 "$B/sample-render-loop" "${model_path[llama2-7b-Q4_0]}" --frames 300 --budget-us 1000 \
            --triangles 30000 --size 1024
        show "$work/logs/render-loop.log"
        run_step render-loop-fast 60 "$B/sample-render-loop" "${model_path[llama2-7b-Q4_0]}" --frames 300 --budget-us 500
        show "$work/logs/render-loop-fast.log"
    fi
elif [[ -x $B/sample-render-loop ]]; then
    run_step render-loop 60 "$B/sample-render-loop" "$STORIES" --frames 30 --budget-us 1000
    show "$work/logs/render-loop.log"
fi

# ---- profile ---------------------------------------------------------------------------------------------
# The largest model vkllm bench ran on, llama2-7b Q4_0 if it did.
if [[ $mode == gpu ]]; then prof=(-p 512 -n 32); else prof=(-p 64 -n 8); fi
prof_model=
for m in llama2-7b-Q4_0 tinyllama-1.1b-Q4_K_M llama-134m-Q4_0; do
    [[ -n ${vk_ok[$m]:-} ]] && { prof_model=$m; break; }
done
if [[ -n $prof_model ]]; then
    VKLLM_PROFILE=1 run_step profile 60 "$VK" bench -m "${model_path[$prof_model]}" "${prof[@]}" -r 1 --profile --no-ttft
else
    note_step profile "skipped (vkllm bench ran on no model)" 0
fi

# ---- sweeps of the tuning knobs ------------------------------------------------------------------------------
sweep_args=(--sweep "matvec_rows=1,2,4,8" --sweep "matvec_split=8,16,32,64")
has_field matvec_int_dot && sweep_args+=(--sweep "matvec_int_dot=0,1")
if [[ $mode == gpu ]] && ((focus)); then
    sweep_args=(--sweep "matvec_rows=1,2" --sweep "matvec_split=32,64" --sweep "matvec_max_split=32,128")
    run_step sweep-matvec 45 "$VK" bench-ops --json --types Q4_0,Q4_K --shapes 4096x4096,4096x14336,14336x4096 \
        --batches none --ns 1,8 --runs 3 --min-ms 8 "${sweep_args[@]}"
elif [[ $mode == gpu ]]; then
    run_step sweep-matvec 75 "$VK" bench-ops --json --types Q4_0,Q4_K,Q8_0,Q6_K --shapes 4096x4096,14336x4096 \
        --batches none --ns 1,8 --runs 3 --min-ms 8 "${sweep_args[@]}"
else
    sweep_args=(--sweep "matvec_rows=8,16")
    has_field matvec_int_dot && sweep_args+=(--sweep "matvec_int_dot=0,1")
    run_step sweep-matvec 60 "$VK" bench-ops --json --quick --types Q4_0 --shapes 1024x768 --batches none --ns 1,8 \
        --runs 1 --min-ms 5 "${sweep_args[@]}"
fi
coop_fields=$(awk '$1 ~ /^coopmat/ { print $1 }' "$work/logs/fields.log")
if [[ $mode == gpu ]] && ((focus)) && [[ -n $coop_fields ]]; then
    # The k step, the buffering and the column tile around the shipped tiles (what a change to the shader's
    # loads and stores moves first); FOCUS_COOPMAT_SWEEP replaces these.
    read -r -a coop_focus <<<"${FOCUS_COOPMAT_SWEEP:---sweep coopmat.tile_k=16,32 --sweep coopmat.buffers=1,2 --sweep coopmat.tile_n=64,128}"
    run_step sweep-coopmat 70 "$VK" bench-ops --json --types Q4_0,Q4_K --shapes none \
        --mm-shapes 4096x4096,11008x4096 --batches 512 --runs 3 --min-ms 10 "${coop_focus[@]}"
elif [[ -n $coop_fields ]]; then
    # Tiles x k step x buffering, the workgroup and its 2 x 4 subgroup grid as in the nvidia row; on 0 is the
    # tiled mat-mul beside them.
    coop_args=(--sweep "coopmat.tile_m=64,128" --sweep "coopmat.tile_n=64,128" --sweep "coopmat.tile_k=16,32"
               --sweep "coopmat.buffers=1,2")
    if [[ $mode == gpu ]]; then
        run_step sweep-coopmat 60 "$VK" bench-ops --json --types Q4_0,Q8_0,F16,Q4_K --shapes none \
            --mm-shapes 4096x4096,11008x4096 --batches 512 --runs 3 --min-ms 10 "${coop_args[@]}"
        run_step sweep-coopmat-off 20 "$VK" bench-ops --json --types Q4_0,F16 --shapes none \
            --mm-shapes 4096x4096 --batches 512 --runs 3 --min-ms 10 --set coopmat.on=0
        VKLLM_COOPMAT=nv run_step sweep-coopmat-nv 20 "$VK" bench-ops --json --types Q4_0,F16 --shapes none \
            --mm-shapes 4096x4096 --batches 512 --runs 3 --min-ms 10
    else
        run_step sweep-coopmat 60 "$VK" bench-ops --json --quick --types Q4_0 --shapes none --mm-shapes 256x768 \
            --batches 64 --runs 1 --min-ms 5 --sweep "coopmat.tile_k=16,32"
    fi
else
    note_step sweep-coopmat "skipped (no coopmat_* tuning fields in this build)" 0
fi

# ---- the last model, then more rounds, while the budget lasts ------------------------------------------------------
if [[ $mode == gpu && $focus == 0 ]]; then
    if (($(left) > 70)); then e2e_pair llama2-7b-Q8_0 1 90 90 --no-ttft; else note_step e2e-llama2-7b-Q8_0 "skipped (deadline)" 0; fi
    for m in llama2-7b-Q4_0 tinyllama-1.1b-Q4_K_M; do
        (($(left) > 100)) && e2e_pair "$m" 2 60 60
    done
    (($(left) > 60)) && e2e_pair llama-134m-Q4_0 3 45 45 --no-ttft
    # Speculative decoding (docs/speculative.md): the 7B Q8_0 drafted by its Q4_0 and by llama-134m, and lookup on
    # stories260K; vkllm bench alternates runs with and without speculation and checks the texts agree.
    if (($(left) > 90)) && wait_model llama2-7b-Q8_0 && wait_model llama2-7b-Q4_0; then
        run_step spec-draft-7b 60 "$VK" bench -m "${model_path[llama2-7b-Q8_0]}" -p 0 -n 128 -r 3 --no-ttft \
            --draft "${model_path[llama2-7b-Q4_0]}"
        show "$work/logs/spec-draft-7b.log"
        run_step spec-draft-134m 45 "$VK" bench -m "${model_path[llama2-7b-Q8_0]}" -p 0 -n 128 -r 3 --no-ttft \
            --draft "${model_path[llama-134m-Q4_0]}"
        run_step spec-lookup 30 "$VK" bench -m "$STORIES" -p 0 -n 256 -r 5 --no-ttft --lookup
        show "$work/logs/spec-lookup.log"
    fi
    # Continuous batching (docs/serving.md): the scheduler's decode rate with 16 and 64 requests against one.
    if (($(left) > 60)) && wait_model llama2-7b-Q4_0; then
        run_step parallel-16 30 "$VK" bench -m "${model_path[llama2-7b-Q4_0]}" --parallel 16 -n 64 -r 3
        show "$work/logs/parallel-16.log"
        run_step parallel-64 30 "$VK" bench -m "${model_path[llama2-7b-Q4_0]}" --parallel 64 -n 64 -r 3
        show "$work/logs/parallel-64.log"
    fi
elif [[ $mode != gpu ]]; then
    run_step parallel-16 30 "$VK" bench -m "$STORIES" --parallel 16 -n 32 -r 1
    show "$work/logs/parallel-16.log"
fi

# ---- summary ---------------------------------------------------------------------------------------------------
SUM=$OUT/summary.md
{
    echo "# vkllm GPU check ($mode$( ((quick)) && echo ", quick"))"
    echo
    echo "- when: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(($(date +%s) - T0)) s of a ${budget} s budget"
    [[ -r $gpu/MANIFEST ]] && echo "- pack: $(head -1 "$gpu/MANIFEST")"
    echo "- device: ${device_name:-none found}"
    [[ -s $work/logs/nvidia-smi.log ]] && echo "- nvidia-smi at the start: $(tail -1 "$work/logs/nvidia-smi.log")"
    [[ $mode == gpu ]] && command -v nvidia-smi >/dev/null 2>&1 &&
        echo "- nvidia-smi at the end: $(timeout 10 nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw,pstate --format=csv,noheader 2>&1 | head -1) (SM clock, memory clock, temperature, power, state)"
    [[ -s $work/llama-gpu.txt ]] && echo "- llama.cpp's device: $(sort -u "$work/llama-gpu.txt" | head -1 | sed 's/^ *//')"
    echo "- tuning: $(awk '{ printf "%s=%s ", $1, $2 }' "$work/logs/fields.log")"
    echo "- copy_u4: ${copy_gbps} GB/s read (as much written)"
    problems='^\[ *[0-9]+s\] (ERROR|WARNING|FATAL|SKIP)'
    if grep -q -E "$problems" "$LOG"; then
        echo
        echo "Problems logged:"
        echo
        grep -E "$problems" "$LOG" | cut -c1-300 | sed 's/^/    /'
    fi
    echo
    echo "## Steps"
    echo
    echo "| step | status | s |"
    echo "| --- | --- | ---: |"
    awk -F'\t' '{ printf "| %s | %s | %s |\n", $1, $2, $3 }' "$STEPS"
    if grep -q skipped "$STEPS"; then
        echo
        echo "Skipped steps are marked above (the global budget, a missing model, or an earlier timeout)."
    fi

    if [[ -s $work/tests/results.tsv ]]; then
        echo
        echo "## Tests (validation layer $([[ $validation == 1 ]] && echo on || echo OFF))"
        echo
        echo "| test | result | s | first failure lines |"
        echo "| --- | --- | ---: | --- |"
        awk -F'\t' '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$work/tests/results.tsv"
    fi

    echo
    echo "## End to end: vkllm bench vs llama.cpp llama-bench (Vulkan, -ngl 99), -p $P -n $N -r $R, alternated"
    echo
    echo "tokens/s, median over rounds (rounds in brackets); tg share: model file bytes x tg tokens/s, against"
    echo "copy_u4's read bandwidth of this run and against the 4.8 TB/s of the H200's datasheet."
    echo
    echo "| model | test | vkllm | llama.cpp | vkllm / llama.cpp | tg: % of copy_u4 | tg: % of 4.8 TB/s |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    awk -F'\t' -v copy="$copy_gbps" '
        function median(list,   n, a, i, j, t) {
            n = split(list, a, " ")
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            if (n == 0) return ""
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        $2 == "bytes" { if ($4 == "bytes" || !($1 in bytes)) bytes[$1] = $5; next }
        $5 > 0 { v[$1, $2, $4] = v[$1, $2, $4] " " $5; cnt[$1, $2, $4]++; if (!($1 in seen)) { seen[$1] = 1; order[++nm] = $1 } }
        END {
            for (i = 1; i <= nm; i++) {
                m = order[i]
                for (k = 1; k <= 2; k++) {
                    t = k == 1 ? "pp" : "tg"
                    a = median(v[m, "vkllm", t]); b = median(v[m, "llama", t])
                    r = (a != "" && b != "" && b > 0) ? sprintf("%.2f", a / b) : "-"
                    sc = "-"; ss = "-"
                    if (t == "tg" && bytes[m] > 0) {
                        if (a != "" && copy > 0) sc = sprintf("%.0f%%", 100 * bytes[m] * a / (copy * 1e9))
                        if (a != "") ss = sprintf("%.0f%%", 100 * bytes[m] * a / 4.8e12)
                        if (b != "") ss = ss sprintf(" (llama.cpp %.0f%%)", 100 * bytes[m] * b / 4.8e12)
                    }
                    printf "| %s | %s | %s [%d] | %s [%d] | %s | %s | %s |\n", m, t,
                        a == "" ? "-" : sprintf("%.1f", a), cnt[m, "vkllm", t], b == "" ? "-" : sprintf("%.1f", b),
                        cnt[m, "llama", t], r, sc, ss
                }
            }
        }' "$E2E"

    # bench-ops JSON lines -> tables
    jsum() { # FILE TITLE
        [[ -s $1 ]] || return 0
        awk -v title="$2" '
            function num(key,   r) { if (match($0, "\"" key "\": [-0-9.e+]+")) { r = substr($0, RSTART, RLENGTH); sub(/^[^:]*: /, "", r); return r + 0 } return "" }
            function str(key,   r) { if (match($0, "\"" key "\": \"[^\"]*\"")) { r = substr($0, RSTART, RLENGTH); sub(/^[^:]*: "/, "", r); sub(/"$/, "", r); return r } return "" }
            /"kind": "matvec"/ {
                line = sprintf("| %s | %s | %dx%d | %.1f MiB x %d | %.1f | %.0f%% |", str("config"), str("type"), num("rows"), num("cols"),
                               num("weight_bytes") / 1048576, num("copies"), num("gbps"), num("pct_copy"))
                for (n = 1; n <= 8; n *= 2) { u = num("us_n" n); line = line (u == "" ? " - |" : sprintf(" %.1f |", u)) }
                mv[++nmv] = line sprintf(" %.2f |", num("t_last_over_t_first"))
            }
            /"kind": "matmul"/ {
                mm[++nmm] = sprintf("| %s | %s | %dx%d | %d | %.3f | %.0f |", str("config"), str("type"), num("rows"), num("cols"),
                                    num("n"), num("ms"), num("gflops"))
            }
            /"kind": "error"/ { err[++ne] = sprintf("| %s | %s | %dx%d | %s | %s |", str("config"), str("type"), num("rows"), num("cols"), str("op"), str("message")) }
            END {
                print "\n## " title "\n"
                if (nmv) {
                    print "| config | type | rows x cols | weights | n=1 GB/s | % of copy_u4 | n=1 us | n=2 us | n=4 us | n=8 us | t(last n)/t(1) |"
                    print "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
                    for (i = 1; i <= nmv; i++) print mv[i]
                    print ""
                }
                if (nmm) {
                    print "| config | type | rows x cols | n | ms | GFLOP/s |"
                    print "| --- | --- | --- | ---: | ---: | ---: |"
                    for (i = 1; i <= nmm; i++) print mm[i]
                    print ""
                }
                if (ne) {
                    print "| config | type | rows x cols | op | error |"
                    print "| --- | --- | --- | --- | --- |"
                    for (i = 1; i <= ne; i++) print err[i]
                }
                if (!nmv && !nmm && !ne) print "(no rows)"
            }' "$1"
    }
    # The best configuration per type and shape of a sweep: lowest n=1 time, lowest last-n time.
    best() { # FILE TITLE
        [[ -s $1 ]] || return 0
        echo
        echo "### $2: best configuration per type and shape"
        echo
        echo "| type | rows x cols | best at n=1 (us, GB/s) | best at the last n (us) | base row's n=1 / last-n us |"
        echo "| --- | --- | --- | --- | --- |"
        awk -v base="$3" '
            function num(key,   r) { if (match($0, "\"" key "\": [-0-9.e+]+")) { r = substr($0, RSTART, RLENGTH); sub(/^[^:]*: /, "", r); return r + 0 } return "" }
            function str(key,   r) { if (match($0, "\"" key "\": \"[^\"]*\"")) { r = substr($0, RSTART, RLENGTH); sub(/^[^:]*: "/, "", r); sub(/"$/, "", r); return r } return "" }
            /"kind": "matvec"/ {
                k = str("type") " | " num("rows") "x" num("cols")
                if (!(k in b1)) order[++n] = k
                t1 = num("us_n1"); tl = num("us_n8"); if (tl == "") tl = t1
                if (!(k in b1) || t1 < b1[k]) { b1[k] = t1; c1[k] = str("config"); g1[k] = num("gbps") }
                if (!(k in bl) || tl < bl[k]) { bl[k] = tl; cl[k] = str("config") }
                if (str("config") == base) { base1[k] = t1; basel[k] = tl }
            }
            END {
                for (i = 1; i <= n; i++) {
                    k = order[i]
                    printf "| %s | %s (%.1f, %.1f) | %s (%.1f) | %s |\n", k, c1[k], b1[k], g1[k], cl[k], bl[k],
                        (k in base1) ? sprintf("%.1f / %.1f", base1[k], basel[k]) : "-"
                }
            }' "$1"
    }
    jsum "$work/logs/bench-ops.log" "Weight products (vkllm bench-ops, the device's tuning row)"
    [[ -s $work/logs/sweep-matvec.log ]] && {
        # the label the device's own values have in the sweep: field=value of each swept field, in order
        base_cfg=""
        for a in "${sweep_args[@]}"; do
            [[ $a == --sweep ]] && continue
            f=${a%%=*}
            base_cfg+="${base_cfg:+,}$f=$(awk -v f="$f" '$1 == f { print $2 }' "$work/logs/fields.log")"
        done
        best "$work/logs/sweep-matvec.log" "Mat-vec sweep" "$base_cfg"
        echo
        echo "(every configuration: results.tar.gz, logs/sweep-matvec.log)"
    }
    [[ -s $work/logs/sweep-coopmat.log ]] && jsum "$work/logs/sweep-coopmat.log" "Cooperative-matrix sweep (mat-mul)"
    if [[ -s $work/variants.tsv ]]; then
        echo
        echo "## vkllm alone under tuning overrides (VKLLM_TUNE), llama2-7b Q4_0, -p $P -n $N -r 2, tokens/s"
        echo
        echo "| VKLLM_TUNE | pp | tg |"
        echo "| --- | ---: | ---: |"
        awk -F'\t' '{ printf "| %s | %s | %s |\n", $1, $2, $3 }' "$work/variants.tsv"
    fi
    [[ -s $work/logs/sweep-coopmat-off.log ]] && jsum "$work/logs/sweep-coopmat-off.log" "Tiled mat-mul (coopmat.on=0)"
    [[ -s $work/logs/sweep-coopmat-nv.log ]] && jsum "$work/logs/sweep-coopmat-nv.log" "Cooperative matrices, NV kind"

    if [[ -s $work/logs/profile.log ]]; then
        echo
        echo "## Profile ($prof_model ${prof[*]}, VKLLM_PROFILE=1, a timestamp around every dispatch)"
        echo
        echo '```'
        grep -v '^{' "$work/logs/profile.log" | head -70
        echo '```'
    fi
    if ((stall_bytes > 0)); then
        echo
        echo "## vkllm bench timed out: the end of its log"
        for f in "$work"/logs/e2e-*-vkllm-*.log; do
            grep -q pp_tps "$f" && continue
            echo
            echo "$(basename "$f"):"
            echo '```'
            tail -15 "$f"
            echo '```'
        done
    fi
} >"$SUM" 2>>"$LOG"

# Syntheses still running (a model the budget left no time for) end here.
for pid in "${model_pid[@]}"; do
    [[ $pid == "$$" ]] && continue
    if kill -0 "$pid" 2>/dev/null; then
        command -v pkill >/dev/null && pkill -TERM -P "$pid" 2>/dev/null
        kill "$pid" 2>/dev/null
    fi
done

# ---- results archive (at most 8 files come back: log, summary, this) ------------------------------------------
cp "$STEPS" "$work/logs/steps.tsv" 2>/dev/null
cp "$E2E" "$work/logs/e2e.tsv" 2>/dev/null
cp "$work/logs/fields.log" "$work/logs/tuning-fields.txt" 2>/dev/null
for f in "$work"/logs/synth-*.log; do [[ -e $f ]] && cat "$f"; done >>"$LOG"
tar -C "$work" -czf "$OUT/results.tar.gz" logs tests 2>>"$LOG"
log "done in $(($(date +%s) - T0)) s; OUT: $(ls "$OUT" | tr '\n' ' ')"
echo
cat "$SUM"
