/* bshuf_h5.c - a helper for test_plugin.py: morgul's bitshuffle chunks
 * against the reference HDF5 plugin, in both directions.
 *
 *   bshuf_h5 write FILE ELEM_SIZE N SEED   one chunk compressed by morgul
 *                                          (/data) and the same values raw (/raw)
 *   bshuf_h5 read FILE                     decompress /data's chunk (written by
 *                                          the plugin) with morgul, compare to /raw
 */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "morgul/bitshuffle.h"
#include "morgul/h5filter.h"

static hid_t type_of(size_t es) { return es == 2 ? H5T_STD_U16LE : H5T_STD_U32LE; }

int main(int argc, char **argv)
{
    if (argc == 6 && !strcmp(argv[1], "write")) {
        size_t es = (size_t)atoi(argv[3]), n = (size_t)atol(argv[4]);
        uint64_t s = (uint64_t)atol(argv[5]) * 2654435761u + 1;
        uint8_t *in = malloc(n * es + 1);
        for (size_t i = 0; i < n * es; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            in[i] = (i % es == 0) ? (uint8_t)s : (uint8_t)(s & 1); /* compressible high bytes */
        }
        mg_bshuf_ctx *c = mg_bshuf_ctx_new(es, MG_BSHUF_AUTO, NULL);
        size_t cap = mg_bshuf_bound(n, es);
        uint8_t *z = malloc(cap);
        int64_t len = mg_bshuf_compress(c, in, n, z, cap, NULL);
        mg_h5_register_bitshuffle(NULL);
        hid_t f = H5Fcreate(argv[2], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        hsize_t dims[1] = {n}, chunk[1] = {n ? n : 1};
        hid_t sp = H5Screate_simple(1, dims, NULL);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, 1, chunk);
        unsigned cd[5];
        mg_bshuf_cd_values(es, cd);
        H5Pset_filter(dcpl, MG_BSHUF_FILTER_ID, H5Z_FLAG_OPTIONAL, 5, cd);
        hid_t d = H5Dcreate2(f, "data", type_of(es), sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        hsize_t off[1] = {0};
        herr_t r = n ? H5Dwrite_chunk(d, H5P_DEFAULT, 0, off, (size_t)len, z) : 0;
        hid_t d2 = H5Dcreate2(f, "raw", type_of(es), sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d2, type_of(es), H5S_ALL, H5S_ALL, H5P_DEFAULT, in);
        H5Dclose(d);
        H5Dclose(d2);
        H5Pclose(dcpl);
        H5Sclose(sp);
        H5Fclose(f);
        printf("%lld\n", (long long)len);
        mg_bshuf_ctx_free(c);
        free(in);
        free(z);
        return r < 0 || len < 0;
    }
    if (argc == 3 && !strcmp(argv[1], "read")) {
        hid_t f = H5Fopen(argv[2], H5F_ACC_RDONLY, H5P_DEFAULT);
        hid_t d = H5Dopen2(f, "data", H5P_DEFAULT), d2 = H5Dopen2(f, "raw", H5P_DEFAULT);
        hid_t t = H5Dget_type(d);
        size_t es = H5Tget_size(t);
        hid_t sp = H5Dget_space(d);
        hsize_t n;
        H5Sget_simple_extent_dims(sp, &n, NULL);
        hsize_t off[1] = {0}, csize = 0;
        H5Dget_chunk_storage_size(d, off, &csize);
        uint8_t *z = malloc(csize + 1), *raw = malloc(n * es + 1), *back = malloc(n * es + 1);
        uint32_t filters = 0;
        H5Dread_chunk(d, H5P_DEFAULT, off, &filters, z);
        H5Dread(d2, H5Dget_type(d2), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw);
        mg_bshuf_ctx *c = mg_bshuf_ctx_new(es, MG_BSHUF_AUTO, NULL);
        mg_error e = {0};
        int64_t got = mg_bshuf_decompress(c, z, csize, back, n * es, &e);
        int ok = got == (int64_t)(n * es) && memcmp(raw, back, n * es) == 0;
        printf("%s %s\n", ok ? "equal" : "DIFFERENT", e.message);
        mg_bshuf_ctx_free(c);
        free(z);
        free(raw);
        free(back);
        H5Tclose(t);
        H5Sclose(sp);
        H5Dclose(d);
        H5Dclose(d2);
        H5Fclose(f);
        return !ok;
    }
    fprintf(stderr, "usage: bshuf_h5 write FILE ELEM_SIZE N SEED | bshuf_h5 read FILE\n");
    return 2;
}
