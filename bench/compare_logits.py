#!/usr/bin/env python3
"""Log-probabilities of vkllm against llama.cpp on the same prompt (standard library only).

    bench/compare_logits.py MODEL.gguf [--n 64] [--m 16] [--kv f16|f32] [--fa auto|on|off] [--gpu cpu|vulkan]

Runs samples/logits.c (build/sample-logits) and llama.cpp's peer script (bench.mjs --dump, in $PEER_HOME)
on bench.mjs's default prompt of N tokens, both writing the log-softmax of the last prompt position over
the whole vocabulary, and prints max and mean |delta log-prob|, whether the argmax agrees, and how many of
the M greedy tokens that follow agree.  --kv sets the KV cache type of both engines; llama.cpp's flash
attention is off with an F32 cache (its F32 reference configuration) and its default (auto) otherwise.
Environment: VKLLM_SAMPLE_LOGITS (default build/sample-logits), PEER_HOME (default ~/.cache/llama-peer).
Not part of CI: it needs the llama.cpp peer (shared/peer/README.md).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, cwd=None):
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"compare_logits: {' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")


def dump_vkllm(args, path):
    exe = os.environ.get("VKLLM_SAMPLE_LOGITS", os.path.join(REPO, "build", "sample-logits"))
    if not os.access(exe, os.X_OK):
        sys.exit(f"compare_logits: no {exe} (build vkllm, or set VKLLM_SAMPLE_LOGITS)")
    run([exe, args.model, "-n", str(args.n), "-m", str(args.m), "--kv", args.kv, "-o", path])


def dump_llama(args, path):
    home = os.environ.get("PEER_HOME", os.path.expanduser("~/.cache/llama-peer"))
    if not os.path.exists(os.path.join(home, "bench.mjs")) or not os.path.isdir(os.path.join(home, "node_modules")):
        sys.exit(f"compare_logits: the llama.cpp peer is not set up in {home}: run shared/peer/setup.sh once "
                 "(see shared/peer/README.md)")
    fa = args.fa or ("off" if args.kv == "f32" else "auto")
    ctx = max(256, args.n + args.m)
    # node-llama-cpp must run from its own folder (it fails under node -e and resolves its packages there).
    run(["node", "bench.mjs", "--model", os.path.abspath(args.model), "--gpu", args.gpu, "--n", str(args.n),
         "--m", str(args.m), "--reps", "1", "--warmup", "0", "--ctx", str(ctx), "--fa", fa, "--kv", args.kv,
         "--dump", path], cwd=home)
    return fa


def compare(vk, ll):
    if vk["prompt"] != ll["prompt"]:
        sys.exit("compare_logits: the two engines evaluated different prompts:\n"
                 f"  vkllm     {vk['prompt'][:12]}...\n  llama.cpp {ll['prompt'][:12]}...")
    a, b = vk["logprobs"], ll["logprobs"]
    if len(a) != len(b):
        sys.exit(f"compare_logits: vocabularies differ: vkllm {len(a)}, llama.cpp {len(b)}")
    # llama.cpp writes null where a probability underflowed to 0 (log 0); those tokens are left out.
    pairs = [(x, y) for x, y in zip(a, b) if y is not None and math.isfinite(y)]
    deltas = [abs(x - y) for x, y in pairs]
    worst = max(range(len(pairs)), key=lambda i: deltas[i])
    argmax_vk = max(range(len(a)), key=lambda i: a[i])
    argmax_ll = max((i for i in range(len(b)) if b[i] is not None), key=lambda i: b[i])
    same_prefix = 0
    for x, y in zip(vk["generated"], ll["generated"]):
        if x != y:
            break
        same_prefix += 1
    return {
        "vocab": len(a), "compared": len(pairs), "max": deltas[worst], "mean": sum(deltas) / len(deltas),
        "argmax": (argmax_vk, argmax_ll), "greedy": (same_prefix, min(len(vk["generated"]), len(ll["generated"]))),
        "top_logprob": (a[argmax_vk], b[argmax_ll]),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("--n", type=int, default=64, help="prompt tokens, BOS included")
    p.add_argument("--m", type=int, default=16, help="greedy tokens generated after the prompt")
    p.add_argument("--kv", choices=["f16", "f32"], default="f16")
    p.add_argument("--fa", choices=["auto", "on", "off"], help="llama.cpp flash attention (default: off with --kv f32)")
    p.add_argument("--gpu", choices=["cpu", "vulkan"], default="cpu", help="llama.cpp backend")
    p.add_argument("--keep", metavar="DIR", help="keep the two JSON dumps in DIR")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="vkllm-logits-") as tmp:
        out = args.keep or tmp
        os.makedirs(out, exist_ok=True)
        vk_path, ll_path = os.path.join(out, "vkllm.json"), os.path.join(out, "llama.json")
        dump_vkllm(args, vk_path)
        fa = dump_llama(args, ll_path)
        with open(vk_path) as f:
            vk = json.load(f)
        with open(ll_path) as f:
            ll = json.load(f)
    r = compare(vk, ll)
    print(f"model      {args.model}")
    print(f"prompt     {args.n} tokens; vkllm on {vk.get('gpu', '?')}, KV {args.kv}; "
          f"llama.cpp {args.gpu}, KV {args.kv}, flash attention {fa}")
    print(f"max |d logprob|   {r['max']:.3g}   (over {r['compared']} of {r['vocab']} tokens)")
    print(f"mean |d logprob|  {r['mean']:.3g}")
    agree = "yes" if r["argmax"][0] == r["argmax"][1] else "NO"
    print(f"argmax agrees     {agree} (vkllm {r['argmax'][0]} logp {r['top_logprob'][0]:.4f}, "
          f"llama.cpp {r['argmax'][1]} logp {r['top_logprob'][1]:.4f})")
    print(f"greedy tokens     {r['greedy'][0]} of {r['greedy'][1]} agree before the first difference")


if __name__ == "__main__":
    main()
