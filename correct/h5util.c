/* h5util.c - HDF5 attribute helpers (see morgul/h5util.h). */
#include "morgul/h5util.h"

#include <string.h>

int mg_h5_attr_str(hid_t loc, const char *name, const char *v)
{
    if (H5Aexists(loc, name) > 0)
        H5Adelete(loc, name);
    hid_t s = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    hid_t a = H5Acreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a >= 0 && H5Awrite(a, t, v) >= 0 ? 0 : -1;
    if (a >= 0)
        H5Aclose(a);
    H5Tclose(t);
    H5Sclose(s);
    return rc;
}

/* A scalar attribute of file type ftype from a value of memory type mtype. */
static int attr_scalar(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v)
{
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, ftype, s, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a >= 0 && H5Awrite(a, mtype, v) >= 0 ? 0 : -1;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(s);
    return rc;
}

int mg_h5_attr_int(hid_t loc, const char *name, int v) { return attr_scalar(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT, &v); }

int mg_h5_attr_double(hid_t loc, const char *name, double v)
{
    return attr_scalar(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

double mg_h5_attr_get_double(hid_t loc, const char *name, double dflt)
{
    double v = dflt;
    if (H5Aexists(loc, name) > 0) {
        hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0)
            v = dflt;
        H5Aclose(a);
    }
    return v;
}

void mg_h5_attr_get_str(hid_t loc, const char *name, char *dst, size_t cap)
{
    dst[0] = 0;
    if (H5Aexists(loc, name) <= 0)
        return;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t ft = H5Aget_type(a);
    if (H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft)) {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, cap);
        H5Aread(a, t, dst);
        H5Tclose(t);
        dst[cap - 1] = 0;
    }
    H5Tclose(ft);
    H5Aclose(a);
}
