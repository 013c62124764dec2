#!/usr/bin/env python3
"""Makes the llama.cpp test vectors for tests/quant/test_quant_cpu.c.

How it was run (llama.cpp peer tools from ../shared/peer/setup.sh --tools, llama.cpp commit 80fb11a):

    python3 tests/data/quant/make_vectors.py ~/.cache/llama-peer/cpu

It writes a tiny F32 GGUF holding one 2-D tensor (blk.0.ffn_down.weight, ROWS x COLS floats with the
distributions below), runs `llama-quantize --pure IN OUT TYPE` for every file type, and extracts the
quantized tensor bytes.  Q8_1 and Q8_K are never written to model files, so llama-quantize cannot make
them; their bytes come from llama.cpp's reference quantizers (quantize_row_q8_1_ref, quantize_row_q8_K_ref)
called through ctypes in the same libggml-base.so.  Outputs, all raw little-endian:

    input.f32        ROWS*COLS float32, row-major
    <type>.bin       the same rows quantized to <type> (f16, bf16, q4_0, ..., q8_K), ROWS*row_size bytes

The GGUFs are written to a temporary directory and deleted.  Needs only python3 (no numpy).
"""
import ctypes
import math
import os
import struct
import subprocess
import sys
import tempfile

ROWS, COLS = 6, 512
TENSOR = "blk.0.ffn_down.weight"
FILE_TYPES = ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
              "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
GGML_TYPE_IDS = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8,
                 "Q2_K": 10, "Q3_K": 11, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "BF16": 30}
# (weights per block, bytes per block), from ggml-common.h
BLOCKS = {"F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22),
          "Q5_1": (32, 24), "Q8_0": (32, 34), "Q2_K": (256, 84), "Q3_K": (256, 110), "Q4_K": (256, 144),
          "Q5_K": (256, 176), "Q6_K": (256, 210)}
REF_ONLY = {"Q8_1": ("quantize_row_q8_1_ref", 32, 36), "Q8_K": ("quantize_row_q8_K_ref", 256, 292)}


class Lcg:
    """Deterministic generator independent of Python's random module."""

    def __init__(self, seed):
        self.state = seed

    def uniform(self):  # (0, 1)
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        return ((self.state >> 11) + 0.5) / float(1 << 53)

    def gaussian(self):
        return math.sqrt(-2.0 * math.log(self.uniform())) * math.cos(2.0 * math.pi * self.uniform())


def make_rows():
    rng = Lcg(20240611)
    rows = []
    rows.append([rng.gaussian() for _ in range(COLS)])                       # gaussian
    rows.append([rng.gaussian() * 0.02 + (4.0 if i % 61 == 7 else 0.0)      # small, with outliers
                 for i in range(COLS)])
    rows.append([0.0] * COLS)                                                # all zero
    rows.append([-abs(rng.gaussian()) - 0.1 for _ in range(COLS)])           # negative only
    rows.append([round(rng.gaussian() * 4) / 4 for _ in range(COLS)])        # quarter steps: rounding ties
    rows.append([(abs(rng.gaussian()) + 1.0) * (1e-3 if (i // 32) % 2 else 30.0)  # positive, scales differ
                 for i in range(COLS)])                                      # per block
    # Round to float32 so the file holds exactly these values.
    return [[struct.unpack("<f", struct.pack("<f", v))[0] for v in row] for row in rows]


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_f32_gguf(path, rows):
    kv = [("general.architecture", 8, gguf_string("llama")),
          ("llama.context_length", 4, struct.pack("<I", 128)),
          ("llama.embedding_length", 4, struct.pack("<I", ROWS)),
          ("llama.block_count", 4, struct.pack("<I", 1)),
          ("llama.feed_forward_length", 4, struct.pack("<I", COLS)),
          ("llama.attention.head_count", 4, struct.pack("<I", 1)),
          ("llama.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", 1e-5))]
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, 1, len(kv)))
    for key, vtype, value in kv:
        out += gguf_string(key) + struct.pack("<I", vtype) + value
    # ggml order: ne[0] = COLS (contiguous), ne[1] = ROWS.
    out += gguf_string(TENSOR) + struct.pack("<IQQIQ", 2, COLS, ROWS, GGML_TYPE_IDS["F32"], 0)
    out += b"\0" * (-len(out) % 32)
    for row in rows:
        out += struct.pack("<%df" % COLS, *row)
    with open(path, "wb") as f:
        f.write(out)


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string(self):
        n = self.take("Q")
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def skip_value(self, vtype):
        scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
        if vtype in scalar:
            self.take(scalar[vtype])
        elif vtype == 8:
            self.string()
        elif vtype == 9:
            item_type, count = self.take("IQ")
            for _ in range(count):
                self.skip_value(item_type)
        else:
            raise ValueError("unknown GGUF value type %d" % vtype)


def tensor_bytes(qtype):
    block_elems, block_bytes = BLOCKS[qtype]
    return ROWS * COLS // block_elems * block_bytes


def read_tensor(path, name):
    """Returns (ggml type id, offset of the data, whole file) of one tensor of a GGUF file."""
    with open(path, "rb") as f:
        r = Reader(f.read())
    magic, version, n_tensors, n_kv = r.take("4sIQQ")
    assert magic == b"GGUF" and version == 3, (magic, version)
    alignment = 32
    for _ in range(n_kv):
        key, vtype = r.string(), r.take("I")
        if key == "general.alignment":
            alignment = r.take("I")
        else:
            r.skip_value(vtype)
    infos = []
    for _ in range(n_tensors):
        tname, n_dims = r.string(), r.take("I")
        dims = [r.take("Q") for _ in range(n_dims)]
        ttype, offset = r.take("IQ")
        infos.append((tname, dims, ttype, offset))
    data_start = r.pos + (-r.pos % alignment)
    for tname, dims, ttype, offset in infos:
        if tname == name:
            assert dims == [COLS, ROWS], dims
            return ttype, data_start + offset, r.data
    raise KeyError(name)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_vectors.py LLAMA_PEER_CPU_DIR (holding llama-quantize and libggml-base.so)")
    peer = os.path.abspath(sys.argv[1])
    here = os.path.dirname(os.path.abspath(__file__))
    rows = make_rows()
    flat = [v for row in rows for v in row]
    with open(os.path.join(here, "input.f32"), "wb") as f:
        f.write(struct.pack("<%df" % len(flat), *flat))

    env = dict(os.environ, LD_LIBRARY_PATH=peer)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.gguf")
        write_f32_gguf(src, rows)
        for qtype in FILE_TYPES:
            dst = os.path.join(tmp, qtype + ".gguf")
            subprocess.run([os.path.join(peer, "llama-quantize"), "--pure", src, dst, qtype], env=env,
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ttype, start, whole = read_tensor(dst, TENSOR)
            if ttype != GGML_TYPE_IDS[qtype]:
                sys.exit("%s: llama-quantize stored type %d, expected %d" % (qtype, ttype, GGML_TYPE_IDS[qtype]))
            data = whole[start:start + tensor_bytes(qtype)]
            assert len(data) == tensor_bytes(qtype), (qtype, len(data))
            with open(os.path.join(here, qtype.lower() + ".bin"), "wb") as f:
                f.write(data)
            print(qtype, len(data), "bytes")

    ggml = ctypes.CDLL(os.path.join(peer, "libggml-base.so"))
    src = (ctypes.c_float * len(flat))(*flat)
    for qtype, (func, block_elems, block_bytes) in REF_ONLY.items():
        size = len(flat) // block_elems * block_bytes
        dst = ctypes.create_string_buffer(size)
        quantize = getattr(ggml, func)
        quantize.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        quantize(src, dst, len(flat))
        with open(os.path.join(here, qtype.lower() + ".bin"), "wb") as f:
            f.write(dst.raw)
        print(qtype, size, "bytes (reference quantizer)")


if __name__ == "__main__":
    main()
