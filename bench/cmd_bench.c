/* cmd_bench.c - `morgul bench` (filled in below) */
#include "morgul/cli.h"
int mg_cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return 2;
}
