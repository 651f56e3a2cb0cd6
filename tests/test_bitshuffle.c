/* test_bitshuffle.c - the transpose kernels agree with each other and with
 * the definition; chunks round-trip; corrupt chunks are refused. */
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

static void test_kernels_agree(void)
{
    if (!mg_cpu_has_avx2()) {
        printf("     (no AVX2 on this CPU: only the scalar kernel is tested)\n");
        return;
    }
    for (size_t es = 1; es <= 8; es *= 2) {
        mg_bshuf_ctx *s = mg_bshuf_ctx_new(es, MG_BSHUF_SCALAR, NULL), *a = mg_bshuf_ctx_new(es, MG_BSHUF_AVX2, NULL);
        size_t block = mg_bshuf_default_block(es);
        uint8_t *in = malloc(block * es), *o1 = malloc(block * es), *o2 = malloc(block * es);
        /* 256 elements is one tile of the AVX2 inverse: sizes around it and its multiples */
        size_t sizes[] = {8, 16, 24, 32, 40, 56, 64, 72, 248, 256, 264, 512, 1000, 2048 + 8, block - 8, block};
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

static void test_roundtrip_odd_sizes(void)
{
    size_t sizes[] = {0, 1, 7, 8, 9, 4095, 4096, 4097, 4100, 8191, 12345, 524288, 524288 + 5};
    for (size_t es = 2; es <= 4; es *= 2)
        for (int impl = MG_BSHUF_SCALAR; impl <= MG_BSHUF_AVX2; impl++) {
            if (impl == MG_BSHUF_AVX2 && !mg_cpu_has_avx2())
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

int main(void)
{
    RUN(test_transpose_definition);
    RUN(test_kernels_agree);
    RUN(test_roundtrip_odd_sizes);
    RUN(test_corrupt_chunks_refused);
    RUN(test_blocks_equal_contiguous);
    return CHECK_DONE();
}
