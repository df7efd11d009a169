"""numpy's SeedSequence + PCG64 on the device: the reference engine's random streams, bit for bit.

The reference keys every stream by ``SeedSequence([seed, replication, purpose, index])`` and
draws ``Generator(PCG64(ss)).random()`` (53-bit doubles). Doing the same here makes the kernel
draw the very numbers the reference draws, so it agrees with it exactly on stochastic runs too
(on the CPU; CUDA's ``log`` may differ in the last bit), and scenarios share common random
numbers exactly as in the reference. A stream is 4 uint64 words of state: (state hi, state
lo, increment hi, increment lo) of the 128-bit LCG; the host computes nothing per replication.
"""

import warp as wp

from twin.whatif.kernel.options import configure

configure(__name__)

M32 = wp.constant(wp.uint32(0xFFFFFFFF))
INIT_A = wp.constant(wp.uint32(0x43B0D7E5))
MULT_A = wp.constant(wp.uint32(0x931E8875))
INIT_B = wp.constant(wp.uint32(0x8B51F9DD))
MULT_B = wp.constant(wp.uint32(0x58F38DED))
MIX_L = wp.constant(wp.uint32(0xCA01F9DD))
MIX_R = wp.constant(wp.uint32(0x4973F715))
PCG_MH = wp.constant(wp.uint64(0x2360ED051FC65DA4))
PCG_ML = wp.constant(wp.uint64(0x4385DF649FCCF645))
MASK32_64 = wp.constant(wp.uint64(0xFFFFFFFF))
INV53 = wp.constant(wp.float64(1.0 / 9007199254740992.0))


@wp.func
def mul_hi64(a: wp.uint64, b: wp.uint64) -> wp.uint64:
    """High 64 bits of the 128-bit product a·b."""
    a_lo = a & MASK32_64
    a_hi = a >> wp.uint64(32)
    b_lo = b & MASK32_64
    b_hi = b >> wp.uint64(32)
    p0 = a_lo * b_lo
    p1 = a_lo * b_hi
    p2 = a_hi * b_lo
    p3 = a_hi * b_hi
    mid = (p0 >> wp.uint64(32)) + (p1 & MASK32_64) + (p2 & MASK32_64)
    return p3 + (p1 >> wp.uint64(32)) + (p2 >> wp.uint64(32)) + (mid >> wp.uint64(32))


@wp.func
def hashmix(value: wp.uint32, hc: wp.uint32) -> wp.uint32:
    """SeedSequence's hashmix for the hash constant ``hc`` (the caller advances hc)."""
    v = value ^ hc
    v = v * (hc * MULT_A)
    return v ^ (v >> wp.uint32(16))


@wp.func
def mix(x: wp.uint32, y: wp.uint32) -> wp.uint32:
    r = MIX_L * x - MIX_R * y
    return r ^ (r >> wp.uint32(16))


@wp.func
def entropy_word(
    k: int,
    seed_lo: wp.uint32,
    seed_hi: wp.uint32,
    ns: int,
    rep: wp.uint32,
    words: wp.array2d(dtype=wp.uint32),
    sc: int,
    base: int,
) -> wp.uint32:
    """Word k of the assembled entropy [seed words, replication, purpose/index words]."""
    if k < ns:
        if k == 0:
            return seed_lo
        return seed_hi
    if k == ns:
        return rep
    return words[sc, base + k - ns - 1]


@wp.func
def lcg_step(sh: wp.uint64, sl: wp.uint64, ih: wp.uint64, il: wp.uint64) -> wp.vec2ul:
    """state·MULT + inc (mod 2^128) as (hi, lo)."""
    lo = sl * PCG_ML
    hi = sh * PCG_ML + sl * PCG_MH + mul_hi64(sl, PCG_ML)
    lo2 = lo + il
    carry = wp.uint64(0)
    if lo2 < lo:
        carry = wp.uint64(1)
    return wp.vec2ul(hi + ih + carry, lo2)


@wp.func
def seed_stream(
    seed: wp.int64,
    rep: int,
    words: wp.array2d(dtype=wp.uint32),
    nwords: wp.array2d(dtype=wp.int32),
    sc: int,
    stream: int,
    maxw: int,
    st: wp.array(dtype=wp.uint64),
    at: int,
    stride: int,
):
    """Initialise stream ``stream`` like PCG64(SeedSequence([seed, rep, purpose, index]))."""
    s64 = wp.uint64(seed)
    seed_lo = wp.uint32(s64 & MASK32_64)
    seed_hi = wp.uint32(s64 >> wp.uint64(32))
    ns = 1
    if seed_hi != wp.uint32(0):
        ns = 2
    n_ent = ns + 1 + nwords[sc, stream]
    base = stream * maxw
    r32 = wp.uint32(rep)
    hc = INIT_A
    m0 = wp.uint32(0)
    m1 = wp.uint32(0)
    m2 = wp.uint32(0)
    m3 = wp.uint32(0)
    for i in range(4):
        e = wp.uint32(0)
        if i < n_ent:
            e = entropy_word(i, seed_lo, seed_hi, ns, r32, words, sc, base)
        h = hashmix(e, hc)
        hc = hc * MULT_A
        if i == 0:
            m0 = h
        elif i == 1:
            m1 = h
        elif i == 2:
            m2 = h
        else:
            m3 = h
    for src in range(4):
        for dst in range(4):
            if src != dst:
                v = m0
                if src == 1:
                    v = m1
                elif src == 2:
                    v = m2
                elif src == 3:
                    v = m3
                h = hashmix(v, hc)
                hc = hc * MULT_A
                if dst == 0:
                    m0 = mix(m0, h)
                elif dst == 1:
                    m1 = mix(m1, h)
                elif dst == 2:
                    m2 = mix(m2, h)
                else:
                    m3 = mix(m3, h)
    for src in range(4, n_ent):
        e = entropy_word(src, seed_lo, seed_hi, ns, r32, words, sc, base)
        for dst in range(4):
            h = hashmix(e, hc)
            hc = hc * MULT_A
            if dst == 0:
                m0 = mix(m0, h)
            elif dst == 1:
                m1 = mix(m1, h)
            elif dst == 2:
                m2 = mix(m2, h)
            else:
                m3 = mix(m3, h)
    # generate_state(4, uint64): 8 words from the pool, paired (lo, hi)
    hb = INIT_B
    w = wp.vec4ul()
    for i in range(8):
        v = m0
        j = i % 4
        if j == 1:
            v = m1
        elif j == 2:
            v = m2
        elif j == 3:
            v = m3
        v = v ^ hb
        hb = hb * MULT_B
        v = v * hb
        v = v ^ (v >> wp.uint32(16))
        k = i // 2
        if i % 2 == 0:
            w[k] = wp.uint64(v)
        else:
            w[k] = w[k] | (wp.uint64(v) << wp.uint64(32))
    # pcg64_set_seed: state = (w0 << 64 | w1), inc = ((w2 << 64 | w3) << 1) | 1
    ih = (w[2] << wp.uint64(1)) | (w[3] >> wp.uint64(63))
    il = (w[3] << wp.uint64(1)) | wp.uint64(1)
    s = lcg_step(wp.uint64(0), wp.uint64(0), ih, il)
    lo = s[1] + w[1]
    carry = wp.uint64(0)
    if lo < s[1]:
        carry = wp.uint64(1)
    hi = s[0] + w[0] + carry
    s = lcg_step(hi, lo, ih, il)
    st[at] = s[0]
    st[at + stride] = s[1]
    st[at + 2 * stride] = ih
    st[at + 3 * stride] = il


@wp.func
def next_u(st: wp.array(dtype=wp.uint64), at: int, stride: int) -> wp.float64:
    """Next uniform double in [0, 1) of the stream at ``at`` (numpy's Generator.random)."""
    s = lcg_step(st[at], st[at + stride], st[at + 2 * stride], st[at + 3 * stride])
    st[at] = s[0]
    st[at + stride] = s[1]
    x = s[0] ^ s[1]
    rot = s[0] >> wp.uint64(58)
    out = (x >> rot) | (x << ((wp.uint64(64) - rot) & wp.uint64(63)))
    return wp.float64(out >> wp.uint64(11)) * INV53
