/* test_detector.c - the detector description: INI reading, defaults,
 * validation, and errors that name the line. */
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "morgul/detector.h"

static const char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/morgul-test-%d.ini", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_full_file(void)
{
    mg_detector d;
    mg_error e = {0};
    const char *p = write_tmp("# a 1M\n[detector]\nname = \"jf1md\"\nport = 40000\nbind = 127.0.0.1 ; here\n"
                              "interfaces = 2\n\n[jf1md-00]\nmodule = M420\nposition = bottom\n\n"
                              "[jf1md-01]\nmodule = M418\nposition = top\nports = 41000, 41001\n\n"
                              "[jf1md-02]\nmodule = M500\nposition = \"21\"\ninterfaces = 1\nbind = 127.0.0.2\n");
    CHECK_EQ(mg_detector_load(&d, p, &e), 0);
    CHECK(!strcmp(d.name, "jf1md"));
    CHECK_EQ(d.nmodules, 3);
    CHECK(!strcmp(d.modules[0].name, "M420"));
    CHECK_EQ(d.modules[0].row, 0);
    CHECK_EQ(d.modules[0].ports[0], 40000);
    CHECK_EQ(d.modules[0].ports[1], 40001);
    CHECK_EQ(d.modules[1].row, 1);
    CHECK_EQ(d.modules[1].ports[0], 41000);
    CHECK_EQ(d.modules[2].row, 2);
    CHECK_EQ(d.modules[2].column, 1);
    CHECK_EQ(d.modules[2].interfaces, 1);
    CHECK_EQ(d.modules[2].ports[0], 41002);
    CHECK(!strcmp(d.modules[2].bind, "127.0.0.2"));
    CHECK(!strcmp(d.modules[0].bind, "127.0.0.1"));
    CHECK_EQ(mg_detector_links(&d), 5);
    int m, i;
    mg_detector_link(&d, 3, &m, &i);
    CHECK(m == 1 && i == 1);
    CHECK_EQ(mg_detector_link_of_port(&d, 41001), 3);
    CHECK_EQ(mg_detector_link_of_port(&d, 1), -1);
    unsigned row, col;
    mg_detector_link_position(&d, 3, &row, &col);
    CHECK(row == 3 && col == 0);
    CHECK_EQ(mg_detector_packets_per_interface(&d, 2), 128);
    unlink(p);
}

static void test_errors_name_the_line(void)
{
    struct {
        const char *text, *want;
    } cases[] = {
        {"[detector]\nnmae = x\n", ":2: unknown key 'nmae'"},
        {"[detector]\n[m]\nmodule = M1\nrow = -1\n", ":4: row '-1'"},
        {"[detector]\n[m]\nmodule = M1\nports = 1, 2, 3\n", ":4: ports"},
        {"[m]\nmodule = M1 2\n", ":2: module name 'M1 2'"},
        {"[m]\nmodule = M1\nposition = middle\n", ":3: position 'middle'"},
        {"[m]\nmodule = M1\n[n]\nmodule = M2\nrow = 0\n", "both at row 0"},
        {"[m]\nmodule = M1\nports = 5\n[n]\nmodule = M2\nports = 5\n", ":4: module M2 listens on 0.0.0.0 port 5"},
        /* the wildcard address overlaps every other one */
        {"[m]\nmodule = M1\nports = 5\nbind = 0.0.0.0\n[n]\nmodule = M2\nports = 5\nbind = 127.0.0.1\n",
         ":5: module M2 listens on 127.0.0.1 port 5, and so does module M1 (0.0.0.0, line 1)"},
        /* a key or a section given twice would otherwise mean the last one */
        {"[detector]\nport = 5\nport = 6\n[m]\nmodule = M1\n", ":3: 'port' was already given on line 2"},
        {"[m]\nmodule = M1\n[m]\nmodule = M2\n", ":3: [m] was already given on line 1"},
        {"[detector]\n[m]\nmodule = M1\n[detector]\n", ":4: [detector] was already given on line 1"},
        {"[detector]\nreadnrows = 12\n[m]\nmodule = M1\n", ":2: readnrows '12'"},
        {"[detector]\nframe_rate = fast\n[m]\nmodule = M1\n", ":2: frame_rate 'fast'"},
        {"[detector]\nname = x\n", "no module sections"},
        {"junk\n", ":1: expected 'key = value'"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        mg_detector d;
        mg_error e = {0};
        const char *p = write_tmp(cases[k].text);
        CHECK(mg_detector_load(&d, p, &e) == MG_ECONFIG);
        if (!strstr(e.message, cases[k].want)) {
            fprintf(stderr, "case %zu: '%s' does not contain '%s'\n", k, e.message, cases[k].want);
            CHECK(0);
        }
        unlink(p);
    }
    mg_detector d;
    mg_error e;
    CHECK(mg_detector_load(&d, "/nonexistent/x.ini", &e) == MG_ECONFIG);
    CHECK(strstr(e.message, "/nonexistent/x.ini") != NULL);
}

static void test_rate_readout_and_addresses(void)
{
    /* two addresses that differ may share a port; the rate and the partial readout are read */
    const char *p = write_tmp("[detector]\nframe_rate = 1000\nreadnrows = 64\n[m]\nmodule = M1\nports = 5\n"
                              "bind = 127.0.0.1\n[n]\nmodule = M2\nports = 5\nbind = 127.0.0.2\n");
    mg_detector d;
    mg_error e = {0};
    CHECK_EQ(mg_detector_load(&d, p, &e), 0);
    CHECK(d.rate_hz == 1000);
    CHECK_EQ(d.readnrows, 64);
    unlink(p);
}

static void test_simple(void)
{
    mg_detector d;
    mg_error e;
    CHECK_EQ(mg_detector_simple(&d, NULL, 2, 2, "127.0.0.1", 50001, "M420,M418", &e), 0);
    CHECK(!strcmp(d.modules[1].name, "M418"));
    CHECK_EQ(d.modules[1].ports[1], 50004);
    CHECK(mg_detector_simple(&d, NULL, 2, 1, "127.0.0.1", 50001, "M420", &e) == MG_ECONFIG);
    CHECK(mg_detector_simple(&d, NULL, 1, 1, "127.0.0.1", 50001, "M420,M418", &e) == MG_ECONFIG);
    CHECK(mg_detector_simple(&d, NULL, 2, 3, "127.0.0.1", 50001, NULL, &e) == MG_ECONFIG);
    CHECK(mg_detector_simple(&d, NULL, 2, 1, "127.0.0.1", 65535, NULL, &e) == MG_ECONFIG);
}

int main(void)
{
    RUN(test_full_file);
    RUN(test_errors_name_the_line);
    RUN(test_rate_readout_and_addresses);
    RUN(test_simple);
    return CHECK_DONE();
}
