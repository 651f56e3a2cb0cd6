/* morgul/detector.h - what the detector looks like: modules, their place in
 * the detector, their network interfaces and UDP ports.
 *
 * A "link" is one module interface = one UDP port = one receiving thread.
 * Links are numbered module by module: module 0 interface 0, module 0
 * interface 1, module 1 interface 0, ...
 *
 * The description comes from an INI file in the style of the original
 * morgul.ini (see docs/detector-config.md):
 *
 *     [detector]
 *     name = jf1md
 *     port = 50001          ; first UDP port, the others follow
 *     bind = 127.0.0.1      ; address the receiver listens on
 *
 *     [jf1md-00]
 *     module = M420
 *     position = bottom     ; or row = 0 / column = 0, or "RC" digits
 *     interfaces = 2
 *
 * or from command-line flags for the simple case (mg_detector_simple).
 */
#ifndef MORGUL_DETECTOR_H
#define MORGUL_DETECTOR_H

#include <stdint.h>
#include <stdio.h>

#include "morgul/error.h"

#define MG_MAX_MODULES 72
#define MG_MAX_LINKS (MG_MAX_MODULES * 2)
#define MG_NAME_MAX 64
#define MG_HOST_MAX 64
#define MG_DEFAULT_PORT 50001

typedef struct mg_module {
    char name[MG_NAME_MAX];   /* e.g. "M420": selects its calibration */
    int row, column;          /* place in the detector, in module units; row 0 at the bottom */
    int interfaces;           /* 1 or 2 */
    uint16_t ports[2];        /* UDP port of each interface */
    char bind[MG_HOST_MAX];   /* address to listen on (receive) or send to (simulate) */
} mg_module;

typedef struct mg_detector {
    char name[MG_NAME_MAX];
    int nmodules;
    mg_module modules[MG_MAX_MODULES];
    char calibration[256];    /* calibration directory, if the file names one */
    double rate_hz;           /* the detector's highest frame rate (frame_rate = ...), 0 = not given */
    int readnrows;            /* partial readout: rows read per module around its centre, 0 = all 512 */
} mg_detector;

/* Reads an INI description.  Every problem is reported with the file name and
 * line ("morgul.ini:12: unknown key 'prot' ...").  The result is validated
 * (mg_detector_validate). */
int mg_detector_load(mg_detector *d, const char *path, mg_error *err);

/* The simple case: `nmodules` modules stacked in one column (module m at row
 * m), each with `interfaces` interfaces, ports base_port, base_port+1, ... in
 * link order, all on `host`.  Modules are named M000, M001, ... unless
 * `names` (comma-separated, may be NULL) names them. */
int mg_detector_simple(mg_detector *d, const char *name, int nmodules, int interfaces,
                       const char *host, int base_port, const char *names, mg_error *err);

/* Checks the description: 1..MG_MAX_MODULES modules, 1 or 2 interfaces,
 * unique module names, positions and ports, and no two interfaces that
 * listen on the same port of overlapping addresses (0.0.0.0 overlaps every
 * address). */
int mg_detector_validate(const mg_detector *d, mg_error *err);

/* Whether module id `id` from the packet headers fits the module name that
 * picks its calibration: the name's digits ("M420" -> 420) against the id.
 * 1 they agree, 0 they do not, -1 nothing to compare (id 0: no packet, or
 * a name without digits). */
int mg_module_id_fits(const char *name, uint16_t id);
/* The id a module named `name` sends (the simulator's): its digits
 * ("M420" -> 420), or `fallback` for a name without digits. */
uint16_t mg_module_id_of(const char *name, uint16_t fallback);

/* Number of links (module interfaces). */
int mg_detector_links(const mg_detector *d);

/* Module and interface of a link. */
void mg_detector_link(const mg_detector *d, int link, int *module, int *iface);

/* The link listening on `port`, or -1. */
int mg_detector_link_of_port(const mg_detector *d, uint16_t port);

/* Packets per frame on one interface of module m: 128 / interfaces. */
unsigned mg_detector_packets_per_interface(const mg_detector *d, int module);

/* The header row and column a packet of this link carries: the module's row
 * times its interface count plus the interface; the module's column. */
void mg_detector_link_position(const mg_detector *d, int link, unsigned *row, unsigned *column);

/* Prints the description, one line per link. */
void mg_detector_print(const mg_detector *d, FILE *out);

#endif
