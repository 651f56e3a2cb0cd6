/* cmd_repair.c - `morgul repair`: finishes the files of runs that died
 * (morgul/rawfile.h, mg_rawfile_repair). */
#include <stdio.h>
#include <string.h>

#include "morgul/cli.h"
#include "morgul/rawfile.h"

int mg_cmd_repair(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *out = argc < 2 ? stderr : stdout;
        fprintf(out, "usage: morgul repair PREFIX [PREFIX ...]\n\n"
                     "Finishes the files of a run that did not end (killed, out of memory, power lost), given the\n"
                     "run's output prefix (-o): each acquisition's data files are cut to the frames they hold whole\n"
                     "and made readable without SWMR access, its master file made over them with the run marked\n"
                     "interrupted (/run/interrupted), and leftovers removed.  Runs that ended are left alone.\n");
        return argc < 2 ? 2 : 0;
    }
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *prefix = argv[i];
        size_t n = strlen(prefix);
        char p[4096];
        /* the master's name given instead of the prefix */
        if (n > 10 && !strcmp(prefix + n - 10, "_master.h5")) {
            snprintf(p, sizeof p, "%.*s", (int)(n - 10), prefix);
            prefix = p;
        }
        mg_error err = {0};
        int rc = mg_rawfile_repair(prefix, stdout, &err);
        if (rc < 0) {
            fprintf(stderr, "morgul repair: %s\n", err.message);
            bad = 1;
        } else if (rc == 0)
            printf("%s: nothing to repair (the run ended, or there are no files of this prefix)\n", prefix);
    }
    return bad;
}
