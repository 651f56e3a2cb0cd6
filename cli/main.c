/* main.c - the `morgul` command: one subcommand per job. */
#include <stdio.h>
#include <string.h>

#include "morgul/cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *what;
} commands[] = {
    {"receive", mg_cmd_receive, "receive a detector's UDP packets, assemble frames, write HDF5"},
    {"replay", mg_cmd_replay, "feed a pcap capture through the same path, or send it over UDP"},
    {"simulate", mg_cmd_simulate, "a software JUNGFRAU: packets over UDP or into a capture"},
    {"plan", mg_cmd_plan, "show the detector and the thread/NUMA plan (also for other machines)"},
    {"bench", mg_cmd_bench, "measure compression and the packet path against baselines"},
    {"gainmap", mg_cmd_gainmap, "store the modules' PSI gain maps in the calibration file"},
    {"calib", mg_cmd_calib, "calibration files: import, merge, show (--png), export; a store: add, list, find"},
    {"correct", mg_cmd_correct, "raw frames to photons in NXmx files, offline"},
    {"pedestal", mg_cmd_pedestal, "pedestals, noise and bad-pixel masks from dark runs"},
    {"repair", mg_cmd_repair, "finish the files of a run that did not end (killed, power lost)"},
    {"serve", mg_cmd_serve, "a persistent receiver driven over HTTP: arm, disarm, status, metrics, run log"},
    {"verify", mg_cmd_verify, "check files against the checksums recorded when they were written"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: morgul COMMAND [options]   (morgul COMMAND --help for its options)\n\n"
                 "morgul receives, assembles and writes data of PSI JUNGFRAU detectors.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].what);
    fprintf(out, "\nWithout a command: a demo (simulate a 2-module detector over loopback, receive it, write HDF5).\n"
                 "morgul %s\n", MG_VERSION);
}

int mg_demo(int argc, char **argv);

int main(int argc, char **argv)
{
    if (argc < 2)
        return mg_demo(argc, argv);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("morgul %s\n", MG_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "demo"))
        return mg_demo(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "morgul: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
