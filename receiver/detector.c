/* detector.c - the detector description and its INI file.
 *
 * The parser is deliberately strict: an unknown key or a value that does not
 * parse is an error naming the line, because a silently ignored typo in a
 * port number loses a whole module's data. */
#include "morgul/detector.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The digits of a module name as a number (-1: none, or too large for an id). */
static long name_digits(const char *name)
{
    long v = -1;
    for (const char *c = name; *c; c++)
        if (isdigit((unsigned char)*c)) {
            v = (v < 0 ? 0 : v) * 10 + (*c - '0');
            if (v > 65535)
                return -1;
        }
    return v;
}

int mg_module_id_fits(const char *name, uint16_t id)
{
    long digits = name_digits(name);
    if (!id || digits < 0)
        return -1;
    return digits == id;
}

uint16_t mg_module_id_of(const char *name, uint16_t fallback)
{
    long digits = name_digits(name);
    return digits < 0 ? fallback : (uint16_t)digits;
}

int mg_detector_links(const mg_detector *d)
{
    int n = 0;
    for (int m = 0; m < d->nmodules; m++)
        n += d->modules[m].interfaces;
    return n;
}

void mg_detector_link(const mg_detector *d, int link, int *module, int *iface)
{
    for (int m = 0; m < d->nmodules; m++) {
        if (link < d->modules[m].interfaces) {
            *module = m;
            *iface = link;
            return;
        }
        link -= d->modules[m].interfaces;
    }
    *module = *iface = -1;
}

int mg_detector_link_of_port(const mg_detector *d, uint16_t port)
{
    int link = 0;
    for (int m = 0; m < d->nmodules; m++)
        for (int i = 0; i < d->modules[m].interfaces; i++, link++)
            if (d->modules[m].ports[i] == port)
                return link;
    return -1;
}

unsigned mg_detector_packets_per_interface(const mg_detector *d, int module)
{
    return 128u / (unsigned)d->modules[module].interfaces;
}

void mg_detector_link_position(const mg_detector *d, int link, unsigned *row, unsigned *column)
{
    int m, i;
    mg_detector_link(d, link, &m, &i);
    const mg_module *mod = &d->modules[m];
    *row = (unsigned)(mod->row * mod->interfaces + i);
    *column = (unsigned)mod->column;
}

/* Whether two bind addresses overlap: the same address, or either is the
 * wildcard 0.0.0.0 (it listens on every address).  Addresses that do not
 * parse are compared as text. */
static int addresses_overlap(const char *a, const char *b)
{
    struct in_addr x, y;
    if (inet_pton(AF_INET, a, &x) != 1 || inet_pton(AF_INET, b, &y) != 1)
        return !strcmp(a, b);
    return x.s_addr == y.s_addr || x.s_addr == INADDR_ANY || y.s_addr == INADDR_ANY;
}

/* The first pair of interfaces of modules n < m that listen on one port of
 * overlapping addresses: 1 and the port, else 0. */
static int port_clash(const mg_module *a, const mg_module *b, unsigned *port)
{
    for (int i = 0; i < a->interfaces; i++)
        for (int j = 0; j < b->interfaces; j++)
            if (a->ports[i] == b->ports[j] && addresses_overlap(a->bind, b->bind)) {
                *port = a->ports[i];
                return 1;
            }
    return 0;
}

int mg_detector_validate(const mg_detector *d, mg_error *err)
{
    if (d->nmodules < 1 || d->nmodules > MG_MAX_MODULES)
        return mg_error_set(err, MG_ECONFIG, "detector '%s' has %d modules; it needs 1 to %d", d->name,
                            d->nmodules, MG_MAX_MODULES);
    if (d->readnrows && (d->readnrows < 8 || d->readnrows > 512 || d->readnrows % 8))
        return mg_error_set(err, MG_ECONFIG, "readnrows %d: give 8 to 512 rows in steps of 8", d->readnrows);
    if (d->rate_hz < 0 || d->rate_hz > 100000)
        return mg_error_set(err, MG_ECONFIG, "frame_rate %g Hz: give 1 to 100000", d->rate_hz);
    for (int m = 0; m < d->nmodules; m++) {
        const mg_module *a = &d->modules[m];
        if (!a->name[0])
            return mg_error_set(err, MG_ECONFIG, "module %d has no name (module = M420, say)", m);
        if (a->interfaces != 1 && a->interfaces != 2)
            return mg_error_set(err, MG_ECONFIG, "module %s has %d interfaces; JUNGFRAU has 1 or 2",
                                a->name, a->interfaces);
        if (a->row < 0 || a->column < 0 || a->row > 255 || a->column > 255)
            return mg_error_set(err, MG_ECONFIG, "module %s has position row %d column %d; both must be 0-255",
                                a->name, a->row, a->column);
        for (int i = 0; i < a->interfaces; i++)
            if (a->ports[i] == 0)
                return mg_error_set(err, MG_ECONFIG, "module %s interface %d has no UDP port", a->name, i);
        if (a->interfaces == 2 && a->ports[0] == a->ports[1])
            return mg_error_set(err, MG_ECONFIG, "module %s uses port %u for both interfaces", a->name,
                                a->ports[0]);
        for (int n = 0; n < m; n++) {
            const mg_module *b = &d->modules[n];
            if (!strcmp(a->name, b->name))
                return mg_error_set(err, MG_ECONFIG, "module name %s is used twice", a->name);
            if (a->row == b->row && a->column == b->column)
                return mg_error_set(err, MG_ECONFIG, "modules %s and %s are both at row %d column %d",
                                    b->name, a->name, a->row, a->column);
            unsigned port;
            if (port_clash(a, b, &port))
                return mg_error_set(err, MG_ECONFIG, "modules %s (%s) and %s (%s) both listen on port %u",
                                    b->name, b->bind, a->name, a->bind, port);
        }
    }
    return 0;
}

static int set_name(char *dst, size_t cap, const char *src, const char *what, mg_error *err)
{
    size_t n = strlen(src);
    if (n == 0 || n >= cap)
        return mg_error_set(err, MG_ECONFIG, "%s '%s' must be 1 to %zu characters", what, src, cap - 1);
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)src[i]) && !strchr("-_.", src[i]))
            return mg_error_set(err, MG_ECONFIG, "%s '%s' may only hold letters, digits, '-', '_' and '.'",
                                what, src);
    memcpy(dst, src, n + 1);
    return 0;
}

int mg_detector_simple(mg_detector *d, const char *name, int nmodules, int interfaces,
                       const char *host, int base_port, const char *names, mg_error *err)
{
    memset(d, 0, sizeof *d);
    if (set_name(d->name, sizeof d->name, name ? name : "jungfrau", "detector name", err))
        return err ? err->code : MG_ECONFIG;
    if (nmodules < 1 || nmodules > MG_MAX_MODULES)
        return mg_error_set(err, MG_ECONFIG, "--modules %d: give 1 to %d", nmodules, MG_MAX_MODULES);
    if (interfaces != 1 && interfaces != 2)
        return mg_error_set(err, MG_ECONFIG, "--interfaces %d: JUNGFRAU modules have 1 or 2", interfaces);
    if (base_port < 1 || base_port + nmodules * interfaces - 1 > 65535)
        return mg_error_set(err, MG_ECONFIG, "--port %d: ports %d..%d must lie in 1..65535", base_port,
                            base_port, base_port + nmodules * interfaces - 1);
    if (strlen(host) >= MG_HOST_MAX)
        return mg_error_set(err, MG_ECONFIG, "host '%s' is too long", host);
    const char *np = names;
    d->nmodules = nmodules;
    int port = base_port;
    for (int m = 0; m < nmodules; m++) {
        mg_module *mod = &d->modules[m];
        if (np && *np) {
            const char *end = strchr(np, ',');
            size_t len = end ? (size_t)(end - np) : strlen(np);
            char buf[MG_NAME_MAX + 1];
            if (len > MG_NAME_MAX)
                len = MG_NAME_MAX;
            memcpy(buf, np, len);
            buf[len] = 0;
            if (set_name(mod->name, sizeof mod->name, buf, "module name", err))
                return err ? err->code : MG_ECONFIG;
            np = end ? end + 1 : np + len;
        } else {
            if (names && *names)
                return mg_error_set(err, MG_ECONFIG, "--module-names names fewer modules than --modules %d",
                                    nmodules);
            snprintf(mod->name, sizeof mod->name, "M%03d", m);
        }
        mod->row = m;
        mod->column = 0;
        mod->interfaces = interfaces;
        for (int i = 0; i < interfaces; i++)
            mod->ports[i] = (uint16_t)port++;
        snprintf(mod->bind, sizeof mod->bind, "%s", host);
    }
    if (np && *np)
        return mg_error_set(err, MG_ECONFIG, "--module-names names more modules than --modules %d", nmodules);
    return mg_detector_validate(d, err);
}

void mg_detector_print(const mg_detector *d, FILE *out)
{
    fprintf(out, "detector %s: %d module(s), %d link(s)\n", d->name, d->nmodules, mg_detector_links(d));
    for (int m = 0; m < d->nmodules; m++) {
        const mg_module *a = &d->modules[m];
        for (int i = 0; i < a->interfaces; i++)
            fprintf(out, "  module %-6s row %d column %d interface %d: %s:%u (module rows %d-%d)\n",
                    a->name, a->row, a->column, i, a->bind, a->ports[i], a->interfaces == 2 ? 256 * i : 0,
                    a->interfaces == 2 ? 256 * i + 255 : 511);
    }
}

/* ---- INI reading ---- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

static char *unquote(char *s)
{
    size_t n = strlen(s);
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
        s[n - 1] = 0;
        return s + 1;
    }
    return s;
}

static int parse_int(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *trim(end) || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

typedef struct ini_module {
    int line;
    int have_row, have_ports, interfaces; /* interfaces 0 = detector default */
    char section[MG_NAME_MAX];
} ini_module;

/* Keys seen in the current section, to refuse a key given twice (the file
 * would otherwise mean whichever came last). */
typedef struct seen_keys {
    char key[24][32];
    int line[24];
    int n;
} seen_keys;

/* 0 if `key` is new in the section (and remembers it), else the line it was given on. */
static int seen_before(seen_keys *s, const char *key, int line)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->key[i], key))
            return s->line[i];
    if (s->n < 24) {
        snprintf(s->key[s->n], sizeof s->key[0], "%s", key);
        s->line[s->n++] = line;
    }
    return 0;
}

int mg_detector_load(mg_detector *d, const char *path, mg_error *err)
{
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "r");
    if (!f)
        return mg_error_set(err, MG_ECONFIG, "cannot open detector description %s: %s", path, strerror(errno));
    char line[1024];
    int lineno = 0, rc = 0;
    enum { NONE, DETECTOR, MODULE } section = NONE;
    int detector_line = 0;
    seen_keys keys = {.n = 0};
    long base_port = MG_DEFAULT_PORT, def_ifaces = 1;
    char def_bind[MG_HOST_MAX] = "0.0.0.0";
    ini_module info[MG_MAX_MODULES];
    memset(info, 0, sizeof info);
    mg_module *mod = NULL;
#define FAIL(...)                                                                      \
    do {                                                                               \
        char msg_[400];                                                                \
        snprintf(msg_, sizeof msg_, __VA_ARGS__);                                      \
        rc = mg_error_set(err, MG_ECONFIG, "%s:%d: %s", path, lineno, msg_);         \
        goto done;                                                                     \
    } while (0)
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f))
            FAIL("line is longer than %zu characters", sizeof line - 2);
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *e = strchr(s, ']');
            if (!e || *trim(e + 1))
                FAIL("a section header looks like [name]");
            *e = 0;
            char *name = trim(s + 1);
            keys.n = 0;
            if (!strcmp(name, "detector")) {
                if (detector_line)
                    FAIL("[detector] was already given on line %d; give each section once", detector_line);
                detector_line = lineno;
                section = DETECTOR;
                mod = NULL;
            } else {
                if (d->nmodules == MG_MAX_MODULES)
                    FAIL("more than %d modules", MG_MAX_MODULES);
                for (int m = 0; m < d->nmodules; m++)
                    if (!strcmp(info[m].section, name))
                        FAIL("[%s] was already given on line %d; give each section once", name, info[m].line);
                section = MODULE;
                info[d->nmodules].line = lineno;
                snprintf(info[d->nmodules].section, sizeof info[0].section, "%s", name);
                mod = &d->modules[d->nmodules++];
                mod->row = -1;
            }
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq)
            FAIL("expected 'key = value' or a [section]");
        *eq = 0;
        char *key = trim(s), *val = eq + 1;
        char *cmt = strpbrk(val, "#;");
        if (cmt && (cmt == val || isspace((unsigned char)cmt[-1])))
            *cmt = 0;
        val = unquote(trim(val));
        long x;
        if (section == NONE)
            FAIL("'%s' comes before any [section]", key);
        {
            int before = seen_before(&keys, key, lineno);
            if (before)
                FAIL("'%s' was already given on line %d of this section; give each key once", key, before);
        }
        if (section == DETECTOR) {
            if (!strcmp(key, "name")) {
                if (set_name(d->name, sizeof d->name, val, "detector name", err))
                    FAIL("%s", err ? err->message : "bad name");
            } else if (!strcmp(key, "port")) {
                if (parse_int(val, 1, 65535, &base_port))
                    FAIL("port '%s' is not a UDP port number (1-65535)", val);
            } else if (!strcmp(key, "bind") || !strcmp(key, "host")) {
                if (!*val || strlen(val) >= MG_HOST_MAX)
                    FAIL("bind address '%s' is empty or too long", val);
                snprintf(def_bind, sizeof def_bind, "%s", val);
            } else if (!strcmp(key, "interfaces")) {
                if (parse_int(val, 1, 2, &def_ifaces))
                    FAIL("interfaces '%s' must be 1 or 2", val);
            } else if (!strcmp(key, "calibration")) {
                if (strlen(val) >= sizeof d->calibration)
                    FAIL("calibration path is too long");
                snprintf(d->calibration, sizeof d->calibration, "%s", val);
            } else if (!strcmp(key, "frame_rate")) {
                char *end;
                errno = 0;
                double r = strtod(val, &end);
                if (errno || end == val || *trim(end) || !(r >= 1 && r <= 100000))
                    FAIL("frame_rate '%s' must be the highest frame rate in Hz, 1 to 100000", val);
                d->rate_hz = r;
            } else if (!strcmp(key, "readnrows")) {
                if (parse_int(val, 8, 512, &x) || x % 8)
                    FAIL("readnrows '%s' must be 8 to 512 rows in steps of 8", val);
                d->readnrows = (int)x;
            } else
                FAIL("unknown key '%s' in [detector] (known: name, port, bind, interfaces, calibration, "
                     "frame_rate, readnrows)", key);
            continue;
        }
        ini_module *mi = &info[d->nmodules - 1];
        if (!strcmp(key, "module")) {
            if (set_name(mod->name, sizeof mod->name, val, "module name", err))
                FAIL("%s", err ? err->message : "bad name");
        } else if (!strcmp(key, "position")) {
            if (!strcmp(val, "bottom"))
                mod->row = 0, mod->column = 0;
            else if (!strcmp(val, "top"))
                mod->row = 1, mod->column = 0;
            else if (strlen(val) == 2 && isdigit((unsigned char)val[0]) && isdigit((unsigned char)val[1]))
                mod->row = val[0] - '0', mod->column = val[1] - '0';
            else
                FAIL("position '%s' must be bottom, top or two digits row,column (\"21\")", val);
            mi->have_row = 1;
        } else if (!strcmp(key, "row")) {
            if (parse_int(val, 0, 255, &x))
                FAIL("row '%s' must be 0-255", val);
            mod->row = (int)x;
            mi->have_row = 1;
        } else if (!strcmp(key, "column")) {
            if (parse_int(val, 0, 255, &x))
                FAIL("column '%s' must be 0-255", val);
            mod->column = (int)x;
        } else if (!strcmp(key, "interfaces")) {
            if (parse_int(val, 1, 2, &x))
                FAIL("interfaces '%s' must be 1 or 2", val);
            mi->interfaces = (int)x;
        } else if (!strcmp(key, "ports") || !strcmp(key, "port")) {
            char *save = NULL, *tok;
            int n = 0;
            for (tok = strtok_r(val, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
                if (n == 2 || parse_int(tok, 1, 65535, &x))
                    FAIL("ports '%s' must be one or two UDP port numbers (1-65535)", val);
                mod->ports[n++] = (uint16_t)x;
            }
            if (!n)
                FAIL("ports is empty");
            mi->have_ports = n;
        } else if (!strcmp(key, "bind") || !strcmp(key, "host")) {
            if (!*val || strlen(val) >= MG_HOST_MAX)
                FAIL("bind address '%s' is empty or too long", val);
            snprintf(mod->bind, sizeof mod->bind, "%s", val);
        } else
            FAIL("unknown key '%s' in a module section (known: module, position, row, column, interfaces, "
                 "ports, bind)", key);
    }
    if (ferror(f))
        FAIL("read error: %s", strerror(errno));
    if (!d->name[0])
        snprintf(d->name, sizeof d->name, "jungfrau");
    if (d->nmodules == 0) {
        lineno = 0;
        rc = mg_error_set(err, MG_ECONFIG, "%s: no module sections; add [%s-00] with module = M420, say", path,
                          d->name);
        goto done;
    }
    long port = base_port;
    for (int m = 0; m < d->nmodules; m++) {
        mod = &d->modules[m];
        lineno = info[m].line;
        if (!mod->name[0])
            FAIL("module section has no 'module = <name>' (M420, say)");
        mod->interfaces = info[m].interfaces ? info[m].interfaces : (int)def_ifaces;
        if (!info[m].have_row)
            mod->row = m;
        if (info[m].have_ports && info[m].have_ports != mod->interfaces)
            FAIL("module %s has %d interface(s) but %d port(s)", mod->name, mod->interfaces,
                 info[m].have_ports);
        if (!info[m].have_ports)
            for (int i = 0; i < mod->interfaces; i++) {
                if (port > 65535)
                    FAIL("ports run past 65535; set port = in [detector] lower");
                mod->ports[i] = (uint16_t)port++;
            }
        else
            port = mod->ports[mod->interfaces - 1] + 1;
        if (!mod->bind[0])
            snprintf(mod->bind, sizeof mod->bind, "%s", def_bind);
    }
    for (int m = 0; m < d->nmodules; m++)
        for (int n = 0; n < m; n++) {
            unsigned port;
            if (port_clash(&d->modules[m], &d->modules[n], &port)) {
                lineno = info[m].line;
                FAIL("module %s listens on %s port %u, and so does module %s (%s, line %d): give each interface "
                     "its own port", d->modules[m].name, d->modules[m].bind, port, d->modules[n].name,
                     d->modules[n].bind, info[n].line);
            }
        }
    lineno = 0;
    rc = mg_detector_validate(d, err);
    if (rc)
        mg_error_prefix(err, "%s", path);
done:
#undef FAIL
    fclose(f);
    return rc;
}
