/* cmd_verify.c - `morgul verify`: files against the checksums recorded when
 * they were written (morgul/verify.h). */
#include <stdio.h>
#include <string.h>

#include "morgul/cli.h"
#include "morgul/run.h"
#include "morgul/verify.h"

int mg_cmd_verify(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *out = argc < 2 ? stderr : stdout;
        fprintf(out, "usage: morgul verify FILE|RUN [...]\n\n"
                     "Checks files against the checksums recorded when they were written: a run (its master file,\n"
                     "or the prefix given with -o: every acquisition's master and data files), one data file, a\n"
                     "calibration file or any HDF5 file.  Every frame's stored chunk is compared with its CRC-32C and\n"
                     "decoded; every dataset of other files is read whole (HDF5 checks their Fletcher-32 checksums).\n"
                     "Each damaged frame or dataset is named.\n\n"
                     "exit status: 0 all intact, 3 something damaged (or a run that did not end: morgul repair),\n"
                     "1 nothing to check there, 2 usage\n");
        return argc < 2 ? MG_EXIT_USAGE : MG_EXIT_OK;
    }
    int worst = MG_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        mg_verify_result res;
        mg_error err = {0};
        if (mg_verify(argv[i], stdout, 50, &res, &err)) {
            fprintf(stderr, "morgul verify: %s\n", err.message);
            if (worst == MG_EXIT_OK)
                worst = MG_EXIT_FAILED;
            continue;
        }
        printf("%s: %d file(s)", argv[i], res.files);
        if (res.frames)
            printf(", %llu frame(s) checked: %llu damaged", (unsigned long long)res.frames,
                   (unsigned long long)res.frames_damaged);
        if (res.frames_unchecked)
            printf(" (%llu without a recorded checksum: decoded only)", (unsigned long long)res.frames_unchecked);
        if (res.datasets)
            printf(", %llu dataset(s) read: %llu damaged", (unsigned long long)res.datasets,
                   (unsigned long long)res.datasets_damaged);
        if (res.datasets_unchecked)
            printf(" (%llu without a checksum)", (unsigned long long)res.datasets_unchecked);
        if (res.files_damaged)
            printf(", %d file(s) damaged", res.files_damaged);
        if (res.files_unfinished)
            printf(", %d unfinished (morgul repair)", res.files_unfinished);
        int bad = mg_verify_damaged(&res);
        printf(": %s\n", bad ? "DAMAGED" : "intact");
        if (bad)
            worst = MG_EXIT_LOSS;
    }
    return worst;
}
