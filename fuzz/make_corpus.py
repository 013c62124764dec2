#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz targets (fuzz/corpus/TARGET/) and the dictionaries
fuzz/gguf.dict and fuzz/options.dict.

Run from anywhere: python3 fuzz/make_corpus.py [SHARED_DIR]  (default: ../shared beside the checkout).
The seeds are small on purpose (the whole corpus stays under ~200 KB): minimal and truncated GGUF files of every
value type and a few tensor types, the metadata of stories260K.gguf, short texts for each vocabulary, chat
conversations and template snippets, tiny llama2.c checkpoints and tokenizers, and argument lists.  Output is
deterministic; rerunning it rewrites the same files."""
import os
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(ROOT), "shared")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q",
          I64: "<q", F64: "<d"}


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def value(t, v):
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        out = struct.pack("<IQ", et, len(items))
        return out + b"".join(value(et, x) for x in items)
    return struct.pack(SCALAR[t], v)


def gguf(kvs, tensors=(), version=3, alignment=32):
    """kvs: [(key, type, value)]; tensors: [(name, ggml_type, ne, data bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += gstr(k) + struct.pack("<I", t) + value(t, v)
    offset = 0
    infos = []
    for name, gt, ne, data in tensors:
        infos.append(gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne) +
                     struct.pack("<IQ", gt, offset))
        offset += (len(data) + alignment - 1) // alignment * alignment
    out += b"".join(infos)
    out += b"\0" * (-len(out) % alignment)
    for _, _, _, data in tensors:
        out += data + b"\0" * (-len(data) % alignment)
    return out


def f32s(n, x=0.5):
    return struct.pack("<%df" % n, *([x] * n))


def read_gguf_kvs(path):
    """The key/value section of a GGUF file, as raw (key, type, value) for the seeds."""
    with open(path, "rb") as f:
        b = f.read()
    pos = 4 + 4 + 8 + 8
    n_kv = struct.unpack_from("<Q", b, 16)[0]

    def rstr():
        nonlocal pos
        n = struct.unpack_from("<Q", b, pos)[0]
        s = b[pos + 8:pos + 8 + n]
        pos += 8 + n
        return s

    def rval(t):
        nonlocal pos
        if t == STR:
            return rstr()
        if t == ARR:
            et, n = struct.unpack_from("<IQ", b, pos)
            pos += 12
            return (et, [rval(et) for _ in range(n)])
        v = struct.unpack_from(SCALAR[t], b, pos)[0]
        pos += struct.calcsize(SCALAR[t])
        return v

    kvs = []
    for _ in range(n_kv):
        k = rstr()
        t = struct.unpack_from("<I", b, pos)[0]
        pos += 4
        kvs.append((k, t, rval(t)))
    return kvs


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def tiny_llama(arch="llama", n_vocab=16, n_embd=8, n_ff=16, n_head=2, n_head_kv=1, extra_kvs=(), bias=False):
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in (0x0A, 0x20)] + \
        ["\u2581", "a", "b", "\u2581a", "\u2581b", "ab", "\u2581ab", "c", "\u2581c", "<|im_start|>", "<|im_end|>"]
    tokens = tokens[:n_vocab]
    types = [2, 3, 3, 6, 6] + [1] * (n_vocab - 7) + [4, 4]
    kvs = [("general.architecture", STR, arch), ("general.alignment", U32, 32),
           (arch + ".context_length", U32, 64), (arch + ".embedding_length", U32, n_embd),
           (arch + ".block_count", U32, 1), (arch + ".feed_forward_length", U32, n_ff),
           (arch + ".attention.head_count", U32, n_head), (arch + ".attention.head_count_kv", U32, n_head_kv),
           (arch + ".attention.layer_norm_rms_epsilon", F32, 1e-5), (arch + ".rope.freq_base", F32, 10000.0),
           ("tokenizer.ggml.model", STR, "llama"), ("tokenizer.ggml.tokens", ARR, (STR, tokens)),
           ("tokenizer.ggml.scores", ARR, (F32, [-float(i) for i in range(n_vocab)])),
           ("tokenizer.ggml.token_type", ARR, (I32, types[:n_vocab])),
           ("tokenizer.ggml.bos_token_id", U32, 1), ("tokenizer.ggml.eos_token_id", U32, 2),
           ("tokenizer.ggml.add_bos_token", BOOL, True),
           ("tokenizer.chat_template", STR, "{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}")]
    kvs += list(extra_kvs)
    kv_dim = n_embd // n_head * n_head_kv
    t = [("token_embd.weight", 0, [n_embd, n_vocab], f32s(n_embd * n_vocab)),
         ("output_norm.weight", 0, [n_embd], f32s(n_embd, 1.0)),
         ("blk.0.attn_norm.weight", 0, [n_embd], f32s(n_embd, 1.0)),
         ("blk.0.attn_q.weight", 0, [n_embd, n_embd], f32s(n_embd * n_embd)),
         ("blk.0.attn_k.weight", 0, [n_embd, kv_dim], f32s(n_embd * kv_dim)),
         ("blk.0.attn_v.weight", 0, [n_embd, kv_dim], f32s(n_embd * kv_dim)),
         ("blk.0.attn_output.weight", 0, [n_embd, n_embd], f32s(n_embd * n_embd)),
         ("blk.0.ffn_norm.weight", 0, [n_embd], f32s(n_embd, 1.0)),
         ("blk.0.ffn_gate.weight", 0, [n_embd, n_ff], f32s(n_embd * n_ff)),
         ("blk.0.ffn_up.weight", 0, [n_embd, n_ff], f32s(n_embd * n_ff)),
         ("blk.0.ffn_down.weight", 0, [n_ff, n_embd], f32s(n_embd * n_ff))]
    if bias:
        t += [("blk.0.attn_q.bias", 0, [n_embd], f32s(n_embd))]
    return gguf(kvs, t)


def gguf_seeds():
    write("gguf", "empty_v3", gguf([]))
    write("gguf", "empty_v2", gguf([], version=2))
    every = [("u8", U8, 200), ("i8", I8, -3), ("u16", U16, 60000), ("i16", I16, -300), ("u32", U32, 1 << 31),
             ("i32", I32, -5), ("f32", F32, 1.5), ("bool", BOOL, True), ("str", STR, "text"), ("u64", U64, 1 << 40),
             ("i64", I64, -(1 << 40)), ("f64", F64, 2.25),
             ("arr.u8", ARR, (U8, [1, 2, 3])), ("arr.i32", ARR, (I32, [-1, 0, 1])),
             ("arr.f32", ARR, (F32, [0.5, -0.5])), ("arr.f64", ARR, (F64, [1e300])),
             ("arr.bool", ARR, (BOOL, [True, False])), ("arr.str", ARR, (STR, ["a", "", "ccc"])),
             ("arr.nested", ARR, (ARR, [(U8, [1]), (STR, ["x", "y"]), (ARR, [(I64, [7])])])),
             ("arr.empty", ARR, (U32, []))]
    write("gguf", "every_type", gguf(every))
    # A few tensor types: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, all of one row or block.
    t = [("f32", 0, [4], f32s(4)), ("f16", 1, [4, 2], b"\0\x3c" * 8), ("q4_0", 2, [32], b"\0" * 18),
         ("q8_0", 8, [32], b"\0" * 34), ("q4_k", 12, [256], b"\0" * 144), ("q6_k", 14, [256], b"\0" * 210),
         ("bf16", 30, [2, 1, 1, 2], b"\0" * 8)]
    write("gguf", "tensor_types", gguf([("general.alignment", U32, 64)], t, alignment=64))
    model = tiny_llama()
    write("gguf", "tiny_llama", model)
    write("gguf", "tiny_qwen2", tiny_llama("qwen2", bias=True, extra_kvs=[
        ("qwen2.rope.scaling.type", STR, "linear"), ("qwen2.rope.scaling.factor", F32, 2.0)]))
    # Truncations: inside the header, the key/value section, the tensor infos and the data.
    for cut in (3, 20, 200, 900, len(model) - 40):
        write("gguf", "tiny_llama_cut%d" % cut, model[:cut])
    bpe_tokens = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["\u0120", "\u0120a", "ab", "<|endoftext|>"]
    bpe = [("general.architecture", STR, "llama"), ("tokenizer.ggml.model", STR, "gpt2"),
           ("tokenizer.ggml.pre", STR, "llama-bpe"), ("tokenizer.ggml.tokens", ARR, (STR, bpe_tokens)),
           ("tokenizer.ggml.token_type", ARR, (I32, [1] * (len(bpe_tokens) - 1) + [3])),
           ("tokenizer.ggml.merges", ARR, (STR, ["\u0120 a", "a b"])),
           ("tokenizer.ggml.bos_token_id", U32, len(bpe_tokens) - 1),
           ("tokenizer.ggml.eos_token_id", U32, len(bpe_tokens) - 1)]
    write("gguf", "bpe_vocab", gguf(bpe))
    for pre in ("gpt-2", "qwen2", "default"):
        write("gguf", "bpe_vocab_" + pre, gguf([kv if kv[0] != "tokenizer.ggml.pre" else (kv[0], STR, pre)
                                                for kv in bpe]))
    stories = os.path.join(SHARED, "models", "stories260K.gguf")
    if os.path.exists(stories):
        write("gguf", "stories260K_metadata", gguf(read_gguf_kvs(stories)))


def tokenizer_seeds():
    # First byte: vocabulary (low bits, modulo the number loaded: stories260K, llama-spm, llama-bpe, gpt-2,
    # qwen2), 0x10 parse_special, 0x20 add_special.
    texts = [b"Hello world", b" Hello  world\n", b"Once upon a time, there was a little girl named Lily.",
             "h\u00e9llo \u65e5\u672c\u8a9e \U0001F642 \u2581x".encode(), b"12345 6789 3.14", b"I'VE don't we'll",
             b"\n\n  \t x  ", b"\xff\xfe invalid \xc3", b"a" * 40, b"<s>Hi</s><unk>",
             b"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
             b"<|endoftext|><|im_start|>user\nHi<|im_end|>", b"", b"\0\x01\x7f"]
    for i, t in enumerate(texts):
        write("tokenizer", "text%02d" % i, bytes([i % 5 | (0x10 if i % 3 == 0 else 0) | (0x20 if i % 4 == 0 else 0)]) + t)
    # llama.cpp's tokenizer test inputs (MIT), one seed per case.
    for vocab_index, inp in ((1, "ggml-vocab-llama-spm.gguf.inp"), (2, "ggml-vocab-llama-bpe.gguf.inp")):
        path = os.path.join(SHARED, "models", "vocab", inp)
        if not os.path.exists(path):
            path = os.path.join(os.path.expanduser("~"), ".cache", "llama-peer", "llama.cpp", "models", inp)
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            cases = f.read().split(b"\n__ggml_vocab_test__\n")
        for i, case in enumerate(cases):
            if case:
                write("tokenizer", "%s_%02d" % (inp.split(".")[0][11:], i), bytes([vocab_index]) + case[:300])


def chat_seeds():
    conv = b"system\0You are helpful.\0user\0Hi there\0assistant\0Hello!\0user\0  Tell me a story \n"
    for flag, name in ((1, "chatml"), (0, "llama2"), (1, "llama3"), (0, "zephyr")):
        write("chat", "name_" + name, bytes([flag]) + name.encode() + b"\0" + conv)
    snippets = {"jinja_chatml": b"{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                                b"{% endfor %}",
                "jinja_llama2": b"{% if messages[0]['role'] == 'system' %}[INST] <<SYS>>\n{{ system }}\n<</SYS>>\n\n"
                                b"{% endif %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}",
                "jinja_llama3": b"{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + "
                                b"message['content'] | trim + '<|eot_id|>' }}",
                "jinja_zephyr": b"{% for message in messages %}<|user|>\n{{ message['content'] + eos_token }}"
                                b"<|assistant|>{% endfor %}",
                "jinja_phi4": b"<|im_start|>system<|im_sep|>{{ message }}<|im_end|>",
                "jinja_mistral": b"[INST] {{ message }}[/INST]"}
    for name, text in snippets.items():
        write("chat", name, b"\1" + text + b"\0" + conv)
    write("chat", "odd_roles", b"\0chatml\0tool\0{}\0\0\0user\0\t \n")
    templates = os.path.join(os.path.expanduser("~"), ".cache", "llama-peer", "llama.cpp", "models", "templates")
    for name in ("microsoft-Phi-3.5-mini-instruct.jinja", "google-gemma-2-2b-it.jinja",
                 "Qwen-Qwen2.5-7B-Instruct.jinja", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja"):
        path = os.path.join(templates, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                write("chat", "template_" + name.split(".jinja")[0], b"\1" + f.read() + b"\0" + conv)


def llama2c_checkpoint(dim=8, hidden=16, layers=1, heads=2, kv_heads=1, vocab=4, seq_len=4, shared=True):
    head = dim // heads
    kv_dim = head * kv_heads
    floats = (vocab * dim + layers * dim + layers * dim * dim * 2 + layers * kv_dim * dim * 2 + layers * dim +
              layers * hidden * dim * 3 + dim + seq_len * head + (0 if shared else vocab * dim))
    return struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab if shared else -vocab, seq_len) + \
        f32s(floats, 0.25)


def llama2c_tokenizer(pieces):
    out = struct.pack("<i", max(len(p) for p in pieces))
    for i, p in enumerate(pieces):
        out += struct.pack("<fi", -float(i), len(p)) + p
    return out


def llama2c_seeds():
    # First byte: 0 checkpoint, 1 tokenizer of data[1] tokens, 2 tokenizer as a vocabulary.
    write("llama2c", "checkpoint_shared", b"\0" + llama2c_checkpoint())
    write("llama2c", "checkpoint_classifier", b"\0" + llama2c_checkpoint(shared=False, heads=4, kv_heads=2))
    write("llama2c", "checkpoint_header_only", b"\0" + llama2c_checkpoint()[:28])
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n", b"<0x00>", b"<0x0A>", b"<0xFF>", b" ", b"a", b" a", b"b", b" ab",
              b"Once", b" upon", b"\xe2\x96\x81", b""]
    tok = llama2c_tokenizer(pieces)
    write("llama2c", "tokenizer_load", b"\1" + bytes([len(pieces)]) + tok)
    write("llama2c", "tokenizer_vocab", b"\2" + tok)
    write("llama2c", "tokenizer_truncated", b"\2" + tok[:-3])
    tok512 = os.path.join(SHARED, "models", "tok512.bin")
    if os.path.exists(tok512):
        with open(tok512, "rb") as f:
            write("llama2c", "tok512_vocab", b"\2" + f.read())


def options_seeds():
    # Arguments after the program name: the command, then its options.
    lines = [[b"run", b"-m", b"model.gguf", b"-p", b"Once upon a time", b"-n", b"16"],
             [b"run", b"--temp", b"0.5", b"--top-k", b"40", b"--top-p", b"0.9", b"--min-p", b"0.05"],
             [b"chat", b"--kv", b"f32", b"--ctx", b"512", b"-c", b"0", b"--device", b"0"],
             [b"run", b"-s", b"123", b"--repeat-penalty", b"1.1", b"--repeat-last-n", b"64",
              b"--seed", b"18446744073709551615"],
             [b"chat", b"--template", b"chatml", b"--system", b"be brief", b"--prompt", b""],
             [b"run", b"-h"], [b"run", b"--n-predict", b"1000000000", b"--temp", b"100"], [b"run", b"-n"],
             [b"run", b"--bogus"], [b"run", b"--kv", b"q8"],
             [b"bench", b"-m", b"m.gguf", b"-p", b"16", b"-n", b"8", b"-r", b"1", b"--json", b"--no-ttft"],
             [b"bench-ops", b"--shapes", b"4096x768,32000x768", b"--mm-shapes", b"small", b"--ns", b"1,2,4,8",
              b"--batches", b"16,512", b"--rotate-mb", b"64", b"--runs", b"3", b"--min-ms", b"100",
              b"--types", b"q4_0,q8_0", b"--sweep", b"matvec_rows=1,2,4,max", b"--set", b"matvec_split=16",
              b"--quick", b"--json", b"--fields", b"--cpu-time"],
             [b"synth", b"--preset", b"tiny", b"--type", b"q4_0", b"-o", b"x.gguf", b"--seed", b"7", b"--pure"],
             [b"quantize", b"in.gguf", b"out.gguf", b"q8_0", b"--pure"],
             [b"convert", b"model.bin", b"--tokenizer", b"tok.bin", b"-o", b"out.gguf"], [b"devices"], []]
    for i, line in enumerate(lines):
        write("options", "args%02d" % i, b"\0".join(line))


def dictionary():
    keys = ["general.architecture", "general.alignment", "general.name", "general.file_type",
            "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
            "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id",
            "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token",
            "tokenizer.ggml.add_eos_token", "tokenizer.ggml.add_space_prefix", "tokenizer.chat_template",
            "llama", "qwen2", "gpt2", "llama-bpe", "gpt-2", "default", "linear", "none"]
    for arch in ("llama", "qwen2"):
        keys += [arch + s for s in (".context_length", ".embedding_length", ".block_count", ".feed_forward_length",
                                    ".attention.head_count", ".attention.head_count_kv", ".attention.key_length",
                                    ".attention.layer_norm_rms_epsilon", ".rope.freq_base", ".rope.dimension_count",
                                    ".rope.scaling.type", ".rope.scaling.factor", ".rope.scale_linear")]
    keys += ["token_embd.weight", "output.weight", "output_norm.weight", "rope_freqs.weight", "blk.0.attn_q.bias"]
    keys += ["blk.0." + s + ".weight" for s in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                                                "ffn_gate", "ffn_up", "ffn_down")]
    lines = ["# GGUF: the magic, key names with their uint64 length prefix and bare, value type tags (uint32)"]
    lines.append('magic="GGUF"')
    for i, k in enumerate(keys):
        lines.append('key_%d="%s"' % (i, k))
        lines.append('lkey_%d="%s%s"' % (i, "".join("\\x%02x" % b for b in struct.pack("<Q", len(k))), k))
    for t in range(13):
        lines.append('type_%d="\\x%02x\\x00\\x00\\x00"' % (t, t))
    lines.append('u64_max="\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff"')
    lines.append('u32_max="\\xff\\xff\\xff\\x7f"')
    with open(os.path.join(ROOT, "fuzz", "gguf.dict"), "w") as f:
        f.write("\n".join(lines) + "\n")


def options_dictionary():
    commands = ["run", "chat", "bench", "bench-ops", "synth", "quantize", "convert", "devices"]
    flags = ["-m", "--model", "-p", "--prompt", "-n", "--n-predict", "-c", "--ctx", "--temp", "--top-k", "--top-p",
             "--min-p", "--repeat-penalty", "--repeat-last-n", "-s", "--seed", "--template", "--system", "--kv",
             "--device", "-h", "--help", "f16", "f32", "-r", "-o", "--json", "--profile", "--no-ttft", "--batch",
             "--batches", "--cpu-time", "--fields", "--min-ms", "--mm-shapes", "--ns", "--quick", "--rotate-mb",
             "--runs", "--set", "--shapes", "--sweep", "--types", "--preset", "--type", "--pure", "--tokenizer",
             "small", "large", "none", "max", "x", ",", "="]
    # Numbers a strict parser must reject or bound: non-finite, hex, fractional, signed, huge.
    numbers = ["nan", "NaN", "inf", "-inf", "infinity", "0x10", "4.7", "-1", "-0", "1e9", "1e308", "4294967295",
               "18446744073709551616", " 1", "1 ", "+1", "0", "1000000000", "16777216", "1048576"]
    lines = ["# Options: the commands and flags of src/cli/options.c and numbers at the edges (arguments are "
             "NUL-separated)"]
    lines += ['cmd_%d="%s"' % (i, c) for i, c in enumerate(commands)]
    lines += ['flag_%d="%s"' % (i, f) for i, f in enumerate(flags)]
    lines += ['num_%d="%s"' % (i, n) for i, n in enumerate(numbers)]
    lines.append('sep="\\x00"')
    with open(os.path.join(ROOT, "fuzz", "options.dict"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    shutil.rmtree(CORPUS, ignore_errors=True)
    gguf_seeds()
    tokenizer_seeds()
    chat_seeds()
    llama2c_seeds()
    options_seeds()
    dictionary()
    options_dictionary()
