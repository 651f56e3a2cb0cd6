/* h5filter.c - filter 32008 inside this process (see morgul/h5filter.h). */
#include "morgul/h5filter.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "morgul/bitshuffle.h"

static size_t bshuf_filter(unsigned flags, size_t nelmts, const unsigned cd[], size_t nbytes, size_t *buf_size,
                           void **buf)
{
    if (nelmts < 3 || (nelmts >= 5 && cd[4] != 2))
        return 0; /* only bitshuffle + LZ4 */
    size_t es = cd[2];
    mg_bshuf_ctx *ctx = mg_bshuf_ctx_new(es, MG_BSHUF_AUTO, NULL);
    if (!ctx)
        return 0;
    size_t out_bytes = 0;
    void *out = NULL;
    if (flags & H5Z_FLAG_REVERSE) {
        const unsigned char *p = *buf;
        if (nbytes >= MG_BSHUF_HEADER_BYTES) {
            uint64_t total = 0;
            for (int i = 0; i < 8; i++)
                total = total << 8 | p[i];
            out = total && total < ((uint64_t)1 << 40) ? H5allocate_memory(total, 0) : NULL;
            if (out && mg_bshuf_decompress(ctx, *buf, nbytes, out, total, NULL) == (int64_t)total)
                out_bytes = total;
        }
    } else if (nbytes % es == 0) {
        size_t cap = mg_bshuf_bound(nbytes / es, es);
        out = H5allocate_memory(cap, 0);
        int64_t n = out ? mg_bshuf_compress(ctx, *buf, nbytes / es, out, cap, NULL) : -1;
        if (n > 0)
            out_bytes = (size_t)n;
    }
    mg_bshuf_ctx_free(ctx);
    /* HDF5 frees filter buffers with its own allocator, hence H5allocate_memory */
    if (!out_bytes) {
        if (out)
            H5free_memory(out);
        return 0;
    }
    H5free_memory(*buf);
    *buf = out;
    *buf_size = out_bytes;
    return out_bytes;
}

int mg_h5_register_bitshuffle(mg_error *err)
{
    static const H5Z_class2_t cls = {
        H5Z_CLASS_T_VERS, (H5Z_filter_t)MG_BSHUF_FILTER_ID, 1, 1, "bitshuffle; LZ4 (morgul)", NULL, NULL,
        bshuf_filter,
    };
    if (H5Zregister(&cls) < 0)
        return mg_error_set(err, MG_ESYS, "cannot register the bitshuffle filter with HDF5");
    return 0;
}
