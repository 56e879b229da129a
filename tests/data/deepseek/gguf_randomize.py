#!/usr/bin/env python3
"""gguf_randomize.py FILE.gguf REGEX SCALE SEED: overwrites, in place, every f32 tensor whose name
matches REGEX with uniform random values in [-SCALE, SCALE) (Python's random, seeded). Stdlib only.
init-model writes DeepSeek-V3's selection bias (blk.*.exp_probs_b.bias) as zeros, which would make
a check of the bias vacuous: make_fixtures.sh gives it values with this."""
import random, re, struct, sys

SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

def main():
    path, pattern, scale, seed = sys.argv[1], re.compile(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    data = bytearray(open(path, 'rb').read())
    pos = 0
    def take(fmt):
        nonlocal pos
        v = struct.unpack_from('<' + fmt, data, pos)
        pos += struct.calcsize('<' + fmt)
        return v[0]
    def string():
        nonlocal pos
        n = take('Q'); s = bytes(data[pos:pos + n]).decode(); pos += n
        return s
    def value(t):
        nonlocal pos
        if t == 8: return string()
        if t == 9:
            et, n = take('I'), take('Q')
            return [value(et) for _ in range(n)]
        v = data[pos:pos + SIZES[t]]; pos += SIZES[t]
        return struct.unpack('<' + {0:'B',1:'b',2:'H',3:'h',4:'I',5:'i',6:'f',7:'?',10:'Q',11:'q',12:'d'}[t], v)[0]
    if data[:4] != b'GGUF': sys.exit(f'{path}: not a GGUF file')
    pos = 4; take('I'); n_t = take('Q'); n_kv = take('Q')
    align = 32
    for _ in range(n_kv):
        k = string(); v = value(take('I'))
        if k == 'general.alignment': align = v
    infos = []
    for _ in range(n_t):
        name = string(); nd = take('I'); dims = [take('Q') for _ in range(nd)]; typ = take('I'); off = take('Q')
        infos.append((name, dims, typ, off))
    base = (pos + align - 1) // align * align
    rng = random.Random(seed)
    hit = 0
    for name, dims, typ, off in infos:
        if not pattern.search(name): continue
        if typ != 0: sys.exit(f'{path}: {name} is not f32 (type {typ})')
        n = 1
        for d in dims: n *= d
        struct.pack_into(f'<{n}f', data, base + off, *[rng.uniform(-scale, scale) for _ in range(n)])
        hit += 1
    if not hit: sys.exit(f'{path}: no tensor matches {pattern.pattern}')
    open(path, 'wb').write(data)
    print(f'{path}: randomized {hit} tensors', file=sys.stderr)

main()
