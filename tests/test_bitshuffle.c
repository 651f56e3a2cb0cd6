/* test_bitshuffle.c - the transpose kernels agree with each other and with
 * the definition, on random and real frames; chunks round-trip; corrupt
 * chunks are refused; at LZ4 acceleration 1 every kernel's chunk is the
 * reference plugin's, byte for byte. */
#include <dlfcn.h>
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
    typedef int64_t (*ref_fn)(const void *, void *, size_t, size_t, size_t);
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
    return CHECK_DONE();
}
