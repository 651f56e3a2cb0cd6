/* bitshuffle.c - bitshuffle/LZ4 chunks (format in morgul/bitshuffle.h).
 *
 * The scalar transpose here is the reference: it works on 8 elements at a
 * time, gathering byte j of each into a 64-bit word and transposing that 8x8
 * bit matrix, so bit b of those 8 bytes lands in one byte of plane 8j+b.
 * The AVX2 and AVX-512 kernels (bitshuffle_avx2.c, bitshuffle_avx512.c) must
 * give the same bytes; tests check all against each other and against the
 * reference HDF5 plugin. */
#include "morgul/bitshuffle.h"

#define LZ4_STATIC_LINKING_ONLY /* LZ4_compress_fast_extState_fastReset */
#include <lz4.h>
#include <stdlib.h>
#include <string.h>

#include "bitshuffle_kernels.h"

struct mg_bshuf_ctx {
    size_t elem_size;
    mg_bshuf_impl impl;
    int acceleration; /* LZ4's: 1 = its default; higher is faster, slightly larger */
    int noise_literals; /* above acceleration 1: leading noise planes as literals, not searched */
    LZ4_stream_t *lz4;
    uint8_t *block;   /* one transposed block */
    uint8_t *scratch; /* kernel scratch: one block again */
    uint8_t *tail;    /* LZ4 of a block's planes after its noise planes (room for LZ4's bound of a block) */
    size_t tail_cap;
};

int mg_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

int mg_cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vbmi") && mg_cpu_has_avx2();
}

const char *mg_bshuf_impl_name(mg_bshuf_impl impl)
{
    return impl == MG_BSHUF_AVX512 ? "AVX-512" : impl == MG_BSHUF_AVX2 ? "AVX2" : impl == MG_BSHUF_SCALAR ? "scalar"
                                                                                                         : "auto";
}

size_t mg_bshuf_default_block(size_t elem_size)
{
    size_t b = MG_BSHUF_TARGET_BLOCK_BYTES / elem_size;
    b = b / 8 * 8;
    return b < 128 ? 128 : b;
}

size_t mg_bshuf_bound(size_t n, size_t elem_size)
{
    size_t block = mg_bshuf_default_block(elem_size);
    size_t full = n / block, rest = (n % block) / 8 * 8;
    size_t bound = MG_BSHUF_HEADER_BYTES;
    bound += full * (4 + (size_t)LZ4_compressBound((int)(block * elem_size)));
    if (rest)
        bound += 4 + (size_t)LZ4_compressBound((int)(rest * elem_size));
    bound += (n % 8) * elem_size;
    return bound;
}

int mg_bshuf_cd_values(size_t elem_size, unsigned cd[5])
{
    cd[0] = 0; /* format version 0.3: what the plugin records */
    cd[1] = 3;
    cd[2] = (unsigned)elem_size;
    cd[3] = 0; /* default block size */
    cd[4] = 2; /* LZ4 */
    return 5;
}

mg_bshuf_ctx *mg_bshuf_ctx_new(size_t elem_size, mg_bshuf_impl impl, mg_error *err)
{
    if (elem_size != 1 && elem_size != 2 && elem_size != 4 && elem_size != 8) {
        mg_error_set(err, MG_EINVAL, "bitshuffle: element size %zu is not 1, 2, 4 or 8", elem_size);
        return NULL;
    }
    if (impl == MG_BSHUF_AUTO)
        impl = mg_cpu_has_avx512() ? MG_BSHUF_AVX512 : mg_cpu_has_avx2() ? MG_BSHUF_AVX2 : MG_BSHUF_SCALAR;
    else if ((impl == MG_BSHUF_AVX2 && !mg_cpu_has_avx2()) || (impl == MG_BSHUF_AVX512 && !mg_cpu_has_avx512())) {
        mg_error_set(err, MG_EINVAL, "bitshuffle: this CPU has no %s; use the scalar kernel",
                     impl == MG_BSHUF_AVX2 ? "AVX2" : "AVX-512 (F, BW and VBMI)");
        return NULL;
    }
    mg_bshuf_ctx *c = calloc(1, sizeof *c);
    size_t block_bytes = mg_bshuf_default_block(elem_size) * elem_size;
    if (c) {
        c->elem_size = elem_size;
        c->impl = impl;
        c->acceleration = MG_BSHUF_DEFAULT_ACCELERATION;
        c->noise_literals = 1;
        c->lz4 = LZ4_createStream();
        c->block = aligned_alloc(64, block_bytes);
        c->scratch = aligned_alloc(64, block_bytes);
        c->tail_cap = (size_t)LZ4_compressBound((int)block_bytes);
        c->tail = malloc(c->tail_cap);
    }
    if (!c || !c->lz4 || !c->block || !c->scratch || !c->tail) {
        mg_bshuf_ctx_free(c);
        mg_error_set(err, MG_ENOMEM, "bitshuffle: out of memory for a compression context");
        return NULL;
    }
    return c;
}

void mg_bshuf_ctx_free(mg_bshuf_ctx *ctx)
{
    if (!ctx)
        return;
    if (ctx->lz4)
        LZ4_freeStream(ctx->lz4);
    free(ctx->block);
    free(ctx->scratch);
    free(ctx->tail);
    free(ctx);
}

mg_bshuf_impl mg_bshuf_ctx_impl(const mg_bshuf_ctx *ctx) { return ctx->impl; }

void mg_bshuf_ctx_set_acceleration(mg_bshuf_ctx *ctx, int acceleration)
{
    ctx->acceleration = acceleration < 1 ? 1 : acceleration > 65537 ? 65537 : acceleration;
}

void mg_bshuf_ctx_set_noise_literals(mg_bshuf_ctx *ctx, int on) { ctx->noise_literals = on != 0; }

/* Transposes an 8x8 bit matrix held as 8 bytes (byte r, bit c) into
 * (byte c, bit r): three rounds of swapping off-diagonal blocks. */
static inline uint64_t transpose8x8(uint64_t x)
{
    uint64_t t;
    t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAull;
    x = x ^ t ^ (t << 7);
    t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCull;
    x = x ^ t ^ (t << 14);
    t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ull;
    x = x ^ t ^ (t << 28);
    return x;
}

void mg_bshuf_transpose_groups(const void *in, void *out, size_t n, size_t es, size_t g0,
                               size_t g1)
{
    const uint8_t *src = in;
    uint8_t *dst = out;
    size_t nb = n / 8;
    for (size_t g = g0; g < g1; g++) {
        const uint8_t *e = src + g * 8 * es;
        for (size_t j = 0; j < es; j++) {
            uint64_t x = 0;
            for (unsigned t = 0; t < 8; t++)
                x |= (uint64_t)e[t * es + j] << (8 * t);
            x = transpose8x8(x);
            for (unsigned k = 0; k < 8; k++)
                dst[(j * 8 + k) * nb + g] = (uint8_t)(x >> (8 * k));
        }
    }
}

void mg_bshuf_transpose_scalar(const void *in, void *out, size_t n, size_t es)
{
    mg_bshuf_transpose_groups(in, out, n, es, 0, n / 8);
}

void mg_bshuf_untranspose_groups(const void *in, void *out, size_t n, size_t es, size_t g0, size_t g1)
{
    const uint8_t *src = in;
    uint8_t *dst = out;
    size_t nb = n / 8;
    for (size_t g = g0; g < g1; g++) {
        uint8_t *e = dst + g * 8 * es;
        for (size_t j = 0; j < es; j++) {
            uint64_t x = 0;
            for (unsigned k = 0; k < 8; k++)
                x |= (uint64_t)src[(j * 8 + k) * nb + g] << (8 * k);
            x = transpose8x8(x);
            for (unsigned t = 0; t < 8; t++)
                e[t * es + j] = (uint8_t)(x >> (8 * t));
        }
    }
}

void mg_bshuf_untranspose_scalar(const void *in, void *out, size_t n, size_t es)
{
    mg_bshuf_untranspose_groups(in, out, n, es, 0, n / 8);
}

void mg_bshuf_transpose(mg_bshuf_ctx *ctx, const void *in, void *out, size_t n)
{
    if (ctx->impl == MG_BSHUF_AVX512)
        mg_bshuf_transpose_avx512(in, out, n, ctx->elem_size, ctx->scratch);
    else if (ctx->impl == MG_BSHUF_AVX2)
        mg_bshuf_transpose_avx2(in, out, n, ctx->elem_size, ctx->scratch);
    else
        mg_bshuf_transpose_scalar(in, out, n, ctx->elem_size);
}

void mg_bshuf_untranspose(mg_bshuf_ctx *ctx, const void *in, void *out, size_t n)
{
    if (ctx->impl == MG_BSHUF_AVX512)
        mg_bshuf_untranspose_avx512(in, out, n, ctx->elem_size);
    else if (ctx->impl == MG_BSHUF_AVX2)
        mg_bshuf_untranspose_avx2(in, out, n, ctx->elem_size);
    else
        mg_bshuf_untranspose_scalar(in, out, n, ctx->elem_size);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Writes the 12-byte chunk header. */
static void put_header(uint8_t *o, uint64_t total, uint32_t block_bytes)
{
    for (int i = 0; i < 8; i++)
        o[i] = (uint8_t)(total >> (56 - 8 * i));
    put_be32(o + 8, block_bytes);
}

/* The noise test of bitshuffle_kernels.h, a byte at a time. */
static size_t equal64(const uint8_t *a, const uint8_t *b)
{
    size_t c = 0;
    for (size_t j = 0; j < 64; j++)
        c += a[j] == b[j];
    return c;
}

static size_t zero_or_ff(const uint8_t *p, size_t n)
{
    size_t c = 0;
    for (size_t j = 0; j < n; j++)
        c += p[j] == 0x00 || p[j] == 0xFF;
    return c;
}

size_t mg_bshuf_noise_planes_scalar(const uint8_t *block, size_t plane_bytes, size_t planes)
{
    return mg_bshuf_noise_planes_with(block, plane_bytes, planes, zero_or_ff, equal64);
}

/* Bytes at the start of a transposed block of `bytes` that are noise planes, to be stored as literals:
 * none at acceleration 1 (the reference's chunks, byte for byte) or where planes are too short to test. */
static size_t noise_lead(const mg_bshuf_ctx *ctx, const uint8_t *blk, size_t bytes)
{
    const size_t planes = 8 * ctx->elem_size, nb = bytes / planes;
    if (ctx->acceleration <= 1 || !ctx->noise_literals || nb % 64 || nb < 256)
        return 0;
    size_t lead = ctx->impl == MG_BSHUF_AVX512 ? mg_bshuf_noise_planes_avx512(blk, nb, planes)
                  : ctx->impl == MG_BSHUF_AVX2 ? mg_bshuf_noise_planes_avx2(blk, nb, planes)
                                               : mg_bshuf_noise_planes_scalar(blk, nb, planes);
    return lead * nb;
}

/* Writes an LZ4 literal length's extra bytes (the token holds up to 15) at q; returns the end. */
static uint8_t *put_length(uint8_t *q, size_t len)
{
    if (len < 15)
        return q;
    for (len -= 15; len >= 255; len -= 255)
        *q++ = 255;
    *q++ = (uint8_t)len;
    return q;
}

/* The LZ4 block of `lead` literal bytes followed by the block `z` (LZ4 of what follows them, c bytes):
 * z's first sequence takes the lead in front of its own literals (its matches point backwards by
 * distance, so they stay right), the rest of z is copied unchanged.  Returns the bytes written at o, or
 * 0 if they would not fit in room. */
static size_t join_literals(const uint8_t *lead_bytes, size_t lead, const uint8_t *z, size_t c, uint8_t *o,
                            size_t room)
{
    const uint8_t *r = z + 1;
    size_t lits = z[0] >> 4;
    if (lits == 15) {
        uint8_t more;
        do
            lits += more = *r++;
        while (more == 255);
    }
    size_t total = lits + lead, rest = c - (size_t)(r - z);
    if (1 + total / 255 + 1 + lead + rest > room)
        return 0;
    uint8_t *q = o;
    *q++ = (uint8_t)((total < 15 ? total : 15) << 4 | (z[0] & 15));
    q = put_length(q, total);
    memcpy(q, lead_bytes, lead);
    memcpy(q + lead, r, rest);
    return (size_t)(q + lead + rest - o);
}

/* One block: transpose, LZ4, 4-byte size in front.  Returns bytes written at o, or 0 if LZ4 failed.
 * Above acceleration 1 the block's leading noise planes (noise_lead) go out as literals without LZ4
 * looking for matches in them: on real frames that is 10 of 16 planes, which LZ4 at acceleration 8
 * spent 40 % of its time on and found next to nothing in. */
static size_t compress_block(mg_bshuf_ctx *ctx, const void *in, size_t b, uint8_t *o, size_t room)
{
    const size_t bytes = b * ctx->elem_size;
    mg_bshuf_transpose(ctx, in, ctx->block, b);
    size_t lead = noise_lead(ctx, ctx->block, bytes), w = 0;
    if (lead) {
        int c = LZ4_compress_fast_extState_fastReset(ctx->lz4, (const char *)ctx->block + lead, (char *)ctx->tail,
                                                     (int)(bytes - lead), (int)ctx->tail_cap, ctx->acceleration);
        if (c > 0)
            w = join_literals(ctx->block, lead, ctx->tail, (size_t)c, o + 4, room - 4);
    }
    if (!w) {
        /* Every block is an independent LZ4 block, as the format requires: one call with the context's
         * state, reset without re-zeroing its 16 KiB table (the fastest call for 8 KiB blocks; static
         * liblz4 only) */
        int c = LZ4_compress_fast_extState_fastReset(ctx->lz4, (const char *)ctx->block, (char *)o + 4, (int)bytes,
                                                     (int)(room - 4), ctx->acceleration);
        if (c <= 0)
            return 0;
        w = (size_t)c;
    }
    put_be32(o, (uint32_t)w);
    return 4 + w;
}

/* Checks the room for a chunk of n elements and writes its header. */
static int start_chunk(const mg_bshuf_ctx *ctx, size_t n, uint8_t *o, size_t cap, mg_error *err)
{
    const size_t es = ctx->elem_size;
    if (cap < mg_bshuf_bound(n, es))
        return mg_error_set(err, MG_EINVAL, "bitshuffle: output buffer of %zu bytes is below the bound %zu", cap,
                            mg_bshuf_bound(n, es));
    put_header(o, (uint64_t)n * es, (uint32_t)(mg_bshuf_default_block(es) * es));
    return 0;
}

int64_t mg_bshuf_compress(mg_bshuf_ctx *ctx, const void *in, size_t n, void *out, size_t cap, mg_error *err)
{
    const size_t es = ctx->elem_size;
    const size_t block = mg_bshuf_default_block(es);
    uint8_t *o = out;
    if (start_chunk(ctx, n, o, cap, err))
        return MG_EINVAL;
    size_t pos = MG_BSHUF_HEADER_BYTES;
    const uint8_t *src = in;
    size_t done = 0;
    while (done + 8 <= n) {
        size_t b = n - done >= block ? block : (n - done) / 8 * 8;
        size_t w = compress_block(ctx, src + done * es, b, o + pos, cap - pos);
        if (!w)
            return mg_error_set(err, MG_EDATA, "bitshuffle: LZ4 failed on a block of %zu bytes", b * es);
        pos += w;
        done += b;
    }
    size_t left = (n - done) * es;
    memcpy(o + pos, src + done * es, left);
    pos += left;
    return (int64_t)pos;
}

int64_t mg_bshuf_compress_blocks(mg_bshuf_ctx *ctx, const void *const *blocks, size_t nblocks, void *out, size_t cap,
                                 mg_error *err)
{
    const size_t block = mg_bshuf_default_block(ctx->elem_size);
    uint8_t *o = out;
    if (start_chunk(ctx, nblocks * block, o, cap, err))
        return MG_EINVAL;
    size_t pos = MG_BSHUF_HEADER_BYTES;
    for (size_t i = 0; i < nblocks; i++) {
        size_t w = compress_block(ctx, blocks[i], block, o + pos, cap - pos);
        if (!w)
            return mg_error_set(err, MG_EDATA, "bitshuffle: LZ4 failed on block %zu", i);
        pos += w;
    }
    return (int64_t)pos;
}

int64_t mg_bshuf_decompress(mg_bshuf_ctx *ctx, const void *in, size_t len, void *out,
                            size_t out_bytes, mg_error *err)
{
    const size_t es = ctx->elem_size;
    const uint8_t *p = in;
    if (len < MG_BSHUF_HEADER_BYTES)
        return mg_error_set(err, MG_EFORMAT, "bitshuffle chunk of %zu bytes is shorter than its header", len);
    uint64_t total = 0;
    for (int i = 0; i < 8; i++)
        total = total << 8 | p[i];
    uint32_t block_bytes = get_be32(p + 8);
    if (total != out_bytes || total % es)
        return mg_error_set(err, MG_EFORMAT,
                            "bitshuffle chunk holds %llu bytes, expected %zu (element size %zu)",
                            (unsigned long long)total, out_bytes, es);
    size_t block = block_bytes / es;
    if (block_bytes % es || block == 0 || block % 8 || block_bytes > MG_BSHUF_TARGET_BLOCK_BYTES * 64)
        return mg_error_set(err, MG_EFORMAT, "bitshuffle chunk has an invalid block size of %u bytes",
                            block_bytes);
    uint8_t *tmp = ctx->block;
    uint8_t *big = NULL;
    if (block_bytes > mg_bshuf_default_block(es) * es) {
        big = malloc(block_bytes);
        if (!big)
            return mg_error_set(err, MG_ENOMEM, "bitshuffle: out of memory for a %u-byte block", block_bytes);
        tmp = big;
    }
    size_t n = total / es, done = 0, pos = MG_BSHUF_HEADER_BYTES;
    uint8_t *dst = out;
    int rc = 0;
    while (done + 8 <= n) {
        size_t b = n - done >= block ? block : (n - done) / 8 * 8;
        if (pos + 4 > len) {
            rc = mg_error_set(err, MG_EFORMAT, "bitshuffle chunk is truncated at byte %zu", pos);
            break;
        }
        uint32_t c = get_be32(p + pos);
        pos += 4;
        if (c > len - pos) {
            rc = mg_error_set(err, MG_EFORMAT, "bitshuffle block at byte %zu claims %u bytes beyond the chunk",
                              pos - 4, c);
            break;
        }
        int d = LZ4_decompress_safe((const char *)p + pos, (char *)tmp, (int)c, (int)(b * es));
        if (d != (int)(b * es)) {
            rc = mg_error_set(err, MG_EFORMAT, "bitshuffle block at byte %zu does not decode to %zu bytes",
                              pos - 4, b * es);
            break;
        }
        mg_bshuf_untranspose(ctx, tmp, dst + done * es, b);
        pos += c;
        done += b;
    }
    if (!rc) {
        size_t left = (n - done) * es;
        if (len - pos != left)
            rc = mg_error_set(err, MG_EFORMAT, "bitshuffle chunk has %zu trailing bytes, expected %zu",
                              len - pos, left);
        else
            memcpy(dst + done * es, p + pos, left);
    }
    free(big);
    return rc ? rc : (int64_t)out_bytes;
}
