/* test_bitshuffle.c - the transpose kernels agree with each other and with
 * the definition, on random and real frames; chunks round-trip; corrupt
 * chunks are refused; at LZ4 acceleration 1 every kernel's chunk is the
 * reference plugin's, byte for byte; at the default acceleration noise
 * planes go out as literals, only noise planes, the same with every kernel,
 * and the reference plugin reads the chunks back. */
#include <dlfcn.h>
#define LZ4_DISABLE_DEPRECATE_WARNINGS /* LZ4_decompress_fast: what older bitshuffle decoders call */
#include <lz4.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "morgul/bitshuffle.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void fill(uint8_t *p, size_t n, int mode)
{
    for (size_t i = 0; i < n; i++)
        p[i] = mode == 0 ? (uint8_t)rnd() : mode == 1 ? (uint8_t)(i * 7) : (uint8_t)(rnd() & 3);
}

/* bit b of byte j of element i goes to plane 8j+b, byte i/8, bit i%8 */
static void test_transpose_definition(void)
{
    for (size_t es = 1; es <= 8; es *= 2) {
        mg_bshuf_ctx *c = mg_bshuf_ctx_new(es, MG_BSHUF_SCALAR, NULL);
        size_t n = 64;
        uint8_t in[64 * 8], out[64 * 8];
        fill(in, n * es, 0);
        mg_bshuf_transpose(c, in, out, n);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < es; j++)
                for (int b = 0; b < 8; b++) {
                    int want = in[i * es + j] >> b & 1;
                    int got = out[(j * 8 + (size_t)b) * (n / 8) + i / 8] >> (i % 8) & 1;
                    if (want != got) {
                        CHECK(want == got);
                        goto next;
                    }
                }
    next:
        mg_bshuf_ctx_free(c);
    }
}

static void kernels_agree(mg_bshuf_impl impl)
{
    for (size_t es = 1; es <= 8; es *= 2) {
        mg_bshuf_ctx *s = mg_bshuf_ctx_new(es, MG_BSHUF_SCALAR, NULL), *a = mg_bshuf_ctx_new(es, impl, NULL);
        size_t block = mg_bshuf_default_block(es);
        uint8_t *in = malloc(block * es), *o1 = malloc(block * es), *o2 = malloc(block * es);
        /* 256 and 512 elements are tiles of the AVX2 and AVX-512 inverses, 32 and 64 the forward steps: sizes
         * around them and their multiples */
        size_t sizes[] = {8, 16, 24, 32, 40, 56, 64, 72, 120, 128, 136, 248, 256, 264, 504, 512, 520, 1000, 1024,
                          2048 + 8, 4096 - 64, block - 8, block};
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            size_t n = sizes[k] / 8 * 8;
            if (n > block)
                continue;
            for (int mode = 0; mode < 3; mode++) {
                fill(in, n * es, mode);
                mg_bshuf_transpose(s, in, o1, n);
                mg_bshuf_transpose(a, in, o2, n);
                CHECK(memcmp(o1, o2, n * es) == 0);
                mg_bshuf_untranspose(s, o1, o2, n);
                CHECK(memcmp(in, o2, n * es) == 0);
                memset(o2, 0xA5, n * es);
                mg_bshuf_untranspose(a, o1, o2, n);
                CHECK(memcmp(in, o2, n * es) == 0);
            }
        }
        free(in);
        free(o1);
        free(o2);
        mg_bshuf_ctx_free(s);
        mg_bshuf_ctx_free(a);
    }
}

static void test_avx2_agrees(void)
{
    if (!mg_cpu_has_avx2()) {
        printf("     (no AVX2 on this CPU: not tested)\n");
        return;
    }
    kernels_agree(MG_BSHUF_AVX2);
}

static void test_avx512_agrees(void)
{
    if (!mg_cpu_has_avx512()) {
        printf("     (no AVX-512 F/BW/VBMI on this CPU: not tested)\n");
        return;
    }
    kernels_agree(MG_BSHUF_AVX512);
}

static void test_roundtrip_odd_sizes(void)
{
    size_t sizes[] = {0, 1, 7, 8, 9, 4095, 4096, 4097, 4100, 8191, 12345, 524288, 524288 + 5};
    for (size_t es = 2; es <= 4; es *= 2)
        for (int impl = MG_BSHUF_SCALAR; impl <= MG_BSHUF_AVX512; impl++) {
            if ((impl == MG_BSHUF_AVX2 && !mg_cpu_has_avx2()) || (impl == MG_BSHUF_AVX512 && !mg_cpu_has_avx512()))
                continue;
            mg_bshuf_ctx *c = mg_bshuf_ctx_new(es, (mg_bshuf_impl)impl, NULL);
            for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
                size_t n = sizes[k], bytes = n * es;
                uint8_t *in = malloc(bytes + 1), *back = malloc(bytes + 1);
                size_t cap = mg_bshuf_bound(n, es);
                uint8_t *z = malloc(cap);
                fill(in, bytes, (int)(k % 3));
                int64_t len = mg_bshuf_compress(c, in, n, z, cap, NULL);
                CHECK(len >= MG_BSHUF_HEADER_BYTES);
                CHECK_EQ(mg_bshuf_decompress(c, z, (size_t)len, back, bytes, NULL), (int64_t)bytes);
                CHECK(memcmp(in, back, bytes) == 0);
                free(in);
                free(back);
                free(z);
            }
            mg_bshuf_ctx_free(c);
        }
}

static void test_corrupt_chunks_refused(void)
{
    mg_bshuf_ctx *c = mg_bshuf_ctx_new(2, MG_BSHUF_AUTO, NULL);
    size_t n = 10000, bytes = n * 2, cap = mg_bshuf_bound(n, 2);
    uint8_t *in = malloc(bytes), *back = malloc(bytes), *z = malloc(cap), *bad = malloc(cap);
    fill(in, bytes, 2);
    int64_t len = mg_bshuf_compress(c, in, n, z, cap, NULL);
    mg_error e;
    /* every truncation is refused */
    for (int64_t cut = 0; cut < len; cut += 97)
        CHECK(mg_bshuf_decompress(c, z, (size_t)cut, back, bytes, &e) == MG_EFORMAT);
    /* wrong stated size */
    CHECK(mg_bshuf_decompress(c, z, (size_t)len, back, bytes - 2, &e) == MG_EFORMAT);
    /* a block length pointing past the end */
    memcpy(bad, z, (size_t)len);
    bad[12] = 0x7F;
    CHECK(mg_bshuf_decompress(c, bad, (size_t)len, back, bytes, &e) == MG_EFORMAT);
    /* random garbage never crashes */
    for (int t = 0; t < 200; t++) {
        memcpy(bad, z, (size_t)len);
        for (int k = 0; k < 8; k++)
            bad[rnd() % (uint64_t)len] = (uint8_t)rnd();
        int64_t r = mg_bshuf_decompress(c, bad, (size_t)len, back, bytes, &e);
        CHECK(r == (int64_t)bytes || r == MG_EFORMAT);
    }
    /* a too-small output buffer for compression */
    CHECK(mg_bshuf_compress(c, in, n, z, 10, &e) == MG_EINVAL);
    free(in);
    free(back);
    free(z);
    free(bad);
    mg_bshuf_ctx_free(c);
}

/* A frame compressed from scattered packet-sized blocks is the same chunk as
 * from contiguous memory. */
static void test_blocks_equal_contiguous(void)
{
    mg_bshuf_ctx *c = mg_bshuf_ctx_new(2, MG_BSHUF_AUTO, NULL);
    size_t block = mg_bshuf_default_block(2), nb = 64, n = nb * block, cap = mg_bshuf_bound(n, 2);
    uint16_t *in = malloc(n * 2);
    fill((uint8_t *)in, n * 2, 2);
    /* the same blocks in reverse order in memory, one byte off alignment */
    uint8_t *scatter = malloc(n * 2 + 1);
    const void *ptr[64];
    for (size_t i = 0; i < nb; i++) {
        uint8_t *at = scatter + 1 + (nb - 1 - i) * block * 2;
        memcpy(at, in + i * block, block * 2);
        ptr[i] = at;
    }
    uint8_t *z1 = malloc(cap), *z2 = malloc(cap);
    int64_t a = mg_bshuf_compress(c, in, n, z1, cap, NULL);
    int64_t b = mg_bshuf_compress_blocks(c, ptr, nb, z2, cap, NULL);
    CHECK_EQ(a, b);
    CHECK(a > 0 && memcmp(z1, z2, (size_t)a) == 0);
    free(in);
    free(scatter);
    free(z1);
    free(z2);
    mg_bshuf_ctx_free(c);
}

#define PLUGIN "/usr/lib/x86_64-linux-gnu/hdf5/serial/plugins/libh5bshuf.so"

typedef int64_t (*ref_fn)(const void *, void *, size_t, size_t, size_t);

/* The real frames of the shared data (10 of 512 x 1024 words), or NULL (said). */
static uint16_t *real_frames(size_t *n)
{
    *n = 0;
    uint16_t *f = malloc((size_t)10 * 512 * 1024 * 2);
    for (int i = 0; f && i < 10; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/psi-mod5/mod5_raw%d.bin", SHARED_DATA, i);
        FILE *fp = fopen(path, "rb");
        if (fp && fread(f + *n * 512 * 1024, 2, 512 * 1024, fp) == 512 * 1024)
            (*n)++;
        if (fp)
            fclose(fp);
    }
    if (!*n)
        printf("     (no real frames in %s/psi-mod5: random data only)\n", SHARED_DATA);
    return f;
}

/* Every kernel against the scalar reference on whole real frames, block by block, both directions. */
static void test_kernels_agree_on_real_frames(void)
{
    size_t n;
    uint16_t *f = real_frames(&n);
    const size_t blk = mg_bshuf_default_block(2);
    uint8_t *a = malloc(blk * 2), *b = malloc(blk * 2);
    for (int impl = MG_BSHUF_AVX2; impl <= MG_BSHUF_AVX512 && n; impl++) {
        if ((impl == MG_BSHUF_AVX2 && !mg_cpu_has_avx2()) || (impl == MG_BSHUF_AVX512 && !mg_cpu_has_avx512()))
            continue;
        mg_bshuf_ctx *s = mg_bshuf_ctx_new(2, MG_BSHUF_SCALAR, NULL), *k = mg_bshuf_ctx_new(2, (mg_bshuf_impl)impl, NULL);
        int same = 1;
        for (size_t i = 0; i < n * 512 * 1024; i += blk) {
            mg_bshuf_transpose(s, f + i, a, blk);
            mg_bshuf_transpose(k, f + i, b, blk);
            same &= !memcmp(a, b, blk * 2);
            mg_bshuf_untranspose(k, a, b, blk);
            same &= !memcmp(f + i, b, blk * 2);
        }
        CHECK(same);
        mg_bshuf_ctx_free(s);
        mg_bshuf_ctx_free(k);
    }
    free(a);
    free(b);
    free(f);
}

/* At acceleration 1 (the reference's fixed setting) the chunk after its 12-byte header is the reference
 * plugin's bshuf_compress_lz4 output, byte for byte, with every kernel: the same format, the same LZ4. */
static void test_chunks_equal_the_reference(void)
{
    void *lib = dlopen(PLUGIN, RTLD_NOW | RTLD_LOCAL);
    ref_fn ref = lib ? (ref_fn)dlsym(lib, "bshuf_compress_lz4") : NULL;
    if (!ref) {
        printf("     (no reference plugin at %s: not compared)\n", PLUGIN);
        if (lib)
            dlclose(lib);
        return;
    }
    size_t n;
    uint16_t *f = real_frames(&n);
    const size_t px = 512 * 1024;
    if (!n) { /* random words with few bits set, as dark frames have */
        n = 1;
        for (size_t i = 0; i < px; i++)
            f[i] = (uint16_t)(rnd() & 0x0FFF);
    }
    size_t cap = mg_bshuf_bound(px, 2);
    uint8_t *mine = malloc(cap), *theirs = malloc(cap);
    for (int impl = MG_BSHUF_SCALAR; impl <= MG_BSHUF_AVX512; impl++) {
        if ((impl == MG_BSHUF_AVX2 && !mg_cpu_has_avx2()) || (impl == MG_BSHUF_AVX512 && !mg_cpu_has_avx512()))
            continue;
        mg_bshuf_ctx *c = mg_bshuf_ctx_new(2, (mg_bshuf_impl)impl, NULL);
        mg_bshuf_ctx_set_acceleration(c, 1);
        for (size_t i = 0; i < n; i++) {
            int64_t m = mg_bshuf_compress(c, f + i * px, px, mine, cap, NULL);
            int64_t r = ref(f + i * px, theirs, px, 2, 0);
            CHECK_EQ(m, r + MG_BSHUF_HEADER_BYTES);
            CHECK(m == r + MG_BSHUF_HEADER_BYTES && !memcmp(mine + MG_BSHUF_HEADER_BYTES, theirs, (size_t)r));
        }
        mg_bshuf_ctx_free(c);
    }
    free(mine);
    free(theirs);
    free(f);
    dlclose(lib);
}


/* The literal bytes in front of the first match of an LZ4 block. */
static size_t first_literals(const uint8_t *z)
{
    size_t n = z[0] >> 4;
    if (n == 15)
        for (const uint8_t *r = z + 1;; r++) {
            n += *r;
            if (*r != 255)
                break;
        }
    return n;
}

/* Test words: 0 dark frames (pedestal about 2000, noise of about 24 ADU: the low planes are noise), 1 random
 * 16-bit words (every plane noise), 2 columns as a ramp, 3 every row the same noisy row (planes repeat at a
 * row's 128 bytes), 4 a pattern of three bytes, 5 a dark frame in its top half, zeros below; of es bytes
 * (2 or 4, the words widened). */
static void fill_words(uint8_t *p, size_t n, size_t es, int kind)
{
    uint16_t row[1024];
    for (size_t c = 0; c < 1024; c++)
        row[c] = (uint16_t)(2000 + rnd() % 200);
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        double g = 0;
        for (int k = 0; k < 6; k++)
            g += (double)(rnd() % 1000) / 1000.0 - 0.5;
        uint32_t dark = (uint32_t)(2000 + (int)(i * 2654435761u % 300) + (int)lround(g * 34));
        switch (kind) {
        case 0: v = dark; break;
        case 1: v = (uint32_t)rnd(); break;
        case 2: v = (uint32_t)(i % 1024); break;
        case 3: v = row[i % 1024]; break;
        case 4: v = (uint32_t)(0x2A5193u >> (8 * (i % 3)) & 0xFF) * 0x0101u; break;
        default: v = (i % 8192) < 4096 ? dark : 0;
        }
        if (es == 2) {
            uint16_t w = (uint16_t)v;
            memcpy(p + 2 * i, &w, 2);
        } else
            memcpy(p + 4 * i, &v, 4);
    }
}

/* Chunk z against plain LZ4 at the same acceleration block by block: how many of its full blocks are the
 * same bytes, how many begin with at least min_lead literals, and the plain chunk's size.  Returns whether
 * every block decodes with LZ4_decompress_fast, which older bitshuffle decoders (some embedded in readers)
 * call: it trusts the block to be well formed and to give exactly the block's size. */
static int against_plain(const uint8_t *in, size_t n, size_t es, const uint8_t *z, int accel, size_t min_lead,
                         size_t *same, size_t *led, size_t *plain_len)
{
    mg_bshuf_ctx *s = mg_bshuf_ctx_new(es, MG_BSHUF_SCALAR, NULL);
    size_t block = mg_bshuf_default_block(es), pos = MG_BSHUF_HEADER_BYTES;
    uint8_t *t = malloc(block * es), *d = malloc(block * es), *p = malloc((size_t)LZ4_compressBound((int)(block * es)));
    int fast_ok = 1;
    *same = *led = 0;
    *plain_len = MG_BSHUF_HEADER_BYTES + n % 8 * es;
    for (size_t i = 0; i + 8 <= n; i += block) {
        size_t b = n - i >= block ? block : (n - i) / 8 * 8, bytes = b * es;
        mg_bshuf_transpose(s, in + i * es, t, b);
        int c = LZ4_compress_fast((const char *)t, (char *)p, (int)bytes, LZ4_compressBound((int)bytes), accel);
        size_t w = (size_t)z[pos] << 24 | (size_t)z[pos + 1] << 16 | (size_t)z[pos + 2] << 8 | z[pos + 3];
        if (b == block) {
            *same += w == (size_t)c && !memcmp(z + pos + 4, p, w);
            *led += first_literals(z + pos + 4) >= min_lead;
        }
        fast_ok &= LZ4_decompress_fast((const char *)z + pos + 4, (char *)d, (int)bytes) == (int)w &&
                   !memcmp(d, t, bytes);
        *plain_len += 4 + (size_t)c;
        pos += 4 + w;
    }
    free(t);
    free(d);
    free(p);
    mg_bshuf_ctx_free(s);
    return fast_ok;
}

/* At the default acceleration: noisy low planes go out as literals (dark frames: at least 4 planes of the
 * block), planes with structure are left to LZ4 (the block is plain LZ4's, byte for byte), every kernel
 * writes the same chunk, no chunk is more than 1 % larger than plain LZ4's (LZ4 starting its search at
 * another place finds other matches: blocks differ by a few % either way), and both morgul and the reference
 * plugin read the words back. */
static void test_noise_planes_as_literals(void)
{
    void *lib = dlopen(PLUGIN, RTLD_NOW | RTLD_LOCAL);
    ref_fn unref = lib ? (ref_fn)dlsym(lib, "bshuf_decompress_lz4") : NULL;
    if (!unref)
        printf("     (no reference plugin at %s: decoded by morgul only)\n", PLUGIN);
    const char *names[] = {"dark", "random", "ramp", "rows alike", "3-byte pattern", "half dark"};
    for (size_t es = 2; es <= 4; es += 2)
        for (int kind = 0; kind < 6; kind++) {
            size_t n = 64 * mg_bshuf_default_block(es) + 24, bytes = n * es, cap = mg_bshuf_bound(n, es);
            uint8_t *in = malloc(bytes), *back = malloc(bytes), *z[3] = {malloc(cap), malloc(cap), malloc(cap)};
            fill_words(in, n, es, kind);
            int64_t len[3] = {0};
            for (int impl = MG_BSHUF_SCALAR; impl <= MG_BSHUF_AVX512; impl++) {
                if ((impl == MG_BSHUF_AVX2 && !mg_cpu_has_avx2()) || (impl == MG_BSHUF_AVX512 && !mg_cpu_has_avx512()))
                    continue;
                mg_bshuf_ctx *c = mg_bshuf_ctx_new(es, (mg_bshuf_impl)impl, NULL);
                len[impl - 1] = mg_bshuf_compress(c, in, n, z[impl - 1], cap, NULL);
                CHECK(len[impl - 1] == len[0] && !memcmp(z[impl - 1], z[0], (size_t)len[0]));
                memset(back, 0, bytes);
                CHECK_EQ(mg_bshuf_decompress(c, z[impl - 1], (size_t)len[impl - 1], back, bytes, NULL), (int64_t)bytes);
                CHECK(!memcmp(back, in, bytes));
                mg_bshuf_ctx_free(c);
            }
            if (unref) {
                memset(back, 0, bytes);
                CHECK_EQ(unref(z[0] + MG_BSHUF_HEADER_BYTES, back, n, es, 0), len[0] - MG_BSHUF_HEADER_BYTES);
                CHECK(!memcmp(back, in, bytes));
            }
            size_t same, led, plain, blocks = 64, plane = mg_bshuf_default_block(es) / 8;
            CHECK(against_plain(in, n, es, z[0], MG_BSHUF_DEFAULT_ACCELERATION, 4 * plane, &same, &led, &plain));
            printf("     %-15s %zu bytes: %zu of %zu blocks plain LZ4, %zu lead with 4+ planes of literals, "
                   "%+.3f %% against plain\n", names[kind], es, same, blocks, led,
                   100.0 * ((double)len[0] - (double)plain) / (double)plain);
            CHECK((double)len[0] <= 1.01 * (double)plain);
            if (kind == 0 || kind == 1)
                CHECK_EQ(led, blocks);
            else if (kind == 5)
                CHECK_EQ(led, blocks / 2);
            else
                CHECK_EQ(same, blocks);
            if (kind == 5)
                CHECK_EQ(same, blocks / 2);
            free(in);
            free(back);
            for (int k = 0; k < 3; k++)
                free(z[k]);
        }
    if (lib)
        dlclose(lib);
}

/* The real frames at the default acceleration: the low 10 planes of nearly every block are literals, the
 * chunks are no larger than plain LZ4's, and the reference plugin and LZ4's fast decoder read them back. */
static void test_noise_planes_on_real_frames(void)
{
    size_t n;
    uint16_t *f = real_frames(&n);
    void *lib = dlopen(PLUGIN, RTLD_NOW | RTLD_LOCAL);
    ref_fn unref = lib ? (ref_fn)dlsym(lib, "bshuf_decompress_lz4") : NULL;
    const size_t px = 512 * 1024, cap = mg_bshuf_bound(px, 2);
    uint8_t *z = malloc(cap);
    uint16_t *back = malloc(px * 2);
    mg_bshuf_ctx *c = mg_bshuf_ctx_new(2, MG_BSHUF_AUTO, NULL);
    size_t led_all = 0, blocks = 0, total = 0, plain_total = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t len = mg_bshuf_compress(c, f + i * px, px, z, cap, NULL);
        size_t same, led, plain;
        CHECK(against_plain((const uint8_t *)(f + i * px), px, 2, z, MG_BSHUF_DEFAULT_ACCELERATION, 10 * 512, &same,
                            &led, &plain));
        led_all += led;
        blocks += px / mg_bshuf_default_block(2);
        total += (size_t)len;
        plain_total += plain;
        if (unref) {
            CHECK_EQ(unref(z + MG_BSHUF_HEADER_BYTES, back, px, 2, 0), len - MG_BSHUF_HEADER_BYTES);
            CHECK(!memcmp(back, f + i * px, px * 2));
        }
    }
    if (n) {
        printf("     %zu of %zu blocks lead with 10 planes of literals; chunks %+.3f %% against plain LZ4\n", led_all,
               blocks, 100.0 * ((double)total - (double)plain_total) / (double)plain_total);
        CHECK(led_all * 10 >= blocks * 9);
        CHECK(total <= plain_total);
    }
    mg_bshuf_ctx_free(c);
    free(z);
    free(back);
    free(f);
    if (lib)
        dlclose(lib);
}

int main(void)
{
    RUN(test_transpose_definition);
    RUN(test_avx2_agrees);
    RUN(test_avx512_agrees);
    RUN(test_kernels_agree_on_real_frames);
    RUN(test_chunks_equal_the_reference);
    RUN(test_roundtrip_odd_sizes);
    RUN(test_corrupt_chunks_refused);
    RUN(test_blocks_equal_contiguous);
    RUN(test_noise_planes_as_literals);
    RUN(test_noise_planes_on_real_frames);
    return CHECK_DONE();
}
