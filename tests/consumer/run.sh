#!/usr/bin/env bash
# The installed package, as a program outside the tree sees it (CTest: consumer_installed).
#   run.sh BUILD_DIR WORK_DIR MODEL CC "CFLAGS"
# installs BUILD_DIR into WORK_DIR/prefix (cmake --install), checks that the header is the only one installed and,
# for a shared library, that it exports vkllm_* symbols only and carries a SONAME; then builds tests/consumer
# twice, through find_package(vkllm) and through `pkg-config --cflags --libs vkllm`, and runs both on MODEL.
set -euo pipefail
build=$1 work=$2 model=$3 cc=$4 cflags=${5:-}
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "consumer: FAIL: $*" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log"
echo "consumer: installed into $prefix:"
(cd "$prefix" && find . -type f -o -type l | sort | sed 's/^/  /')

headers=$(cd "$prefix/include" && find . -type f | sort)
[[ $headers == ./vkllm.h ]] || fail "installed headers are not just vkllm.h: $headers"
pc=$(find "$prefix" -name vkllm.pc)
[[ -n $pc ]] || fail "no vkllm.pc installed"
libdir=$(dirname "$(dirname "$pc")")

shared=$(find "$libdir" -maxdepth 1 -name 'libvkllm.so.*' -type f | head -n 1)
if [[ -n $shared ]]; then
    soname=$(objdump -p "$shared" | awk '/SONAME/ { print $2 }')
    [[ $soname == libvkllm.so.* ]] || fail "$shared has no SONAME libvkllm.so.N ($soname)"
    others=$(nm -D --defined-only "$shared" | awk '{ print $3 }' | grep -v '^vkllm_' || true)
    [[ -z $others ]] || fail "$shared exports symbols other than vkllm_*: $(echo $others | head -c 400)"
    echo "consumer: $(basename "$shared"): SONAME $soname, $(nm -D --defined-only "$shared" | wc -l) symbols, all vkllm_*"
fi
# The header alone compiles as strict C11 and as C++.
echo '#include <vkllm.h>' | "$cc" -std=c11 -Wall -Wextra -pedantic -Werror -fsyntax-only -I"$prefix/include" -x c -
if command -v c++ >/dev/null; then
    echo '#include <vkllm.h>' | c++ -Wall -Wextra -pedantic -Werror -fsyntax-only -I"$prefix/include" -x c++ -
fi

export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
run() { # NAME BINARY
    local out
    out=$("$2" "$model") || fail "$1: the consumer failed"
    echo "$out" | sed "s/^/consumer ($1): /"
    [[ $out == *"Once upon a time, there was a little girl named Lily."* ]] || fail "$1: not stories260K's text"
}

# 1. find_package(vkllm): the CMake package, target vkllm::vkllm.
cmake -S "$here" -B "$work/cmake" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_C_FLAGS="$cflags -Wall -Wextra -Werror" -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" ||
    { cat "$work/cmake.log"; fail "find_package(vkllm) did not configure"; }
cmake --build "$work/cmake" >"$work/build.log" || { cat "$work/build.log"; fail "the find_package build failed"; }
run find_package "$work/cmake/consumer"

# 2. pkg-config --cflags --libs vkllm.
export PKG_CONFIG_PATH=$libdir/pkgconfig
flags=$(pkg-config --cflags --libs vkllm) || fail "pkg-config does not find vkllm"
echo "consumer: pkg-config --cflags --libs vkllm: $flags"
# shellcheck disable=SC2086 # word splitting of the flags is intended
"$cc" $cflags -std=c11 -Wall -Wextra -Werror "$here/consumer.c" $flags -o "$work/consumer-pkg-config"
run pkg-config "$work/consumer-pkg-config"
echo "consumer: PASS"
