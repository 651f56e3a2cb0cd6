/* test_assembler.c - frame assembly in one thread: order, duplicates, late
 * packets, windows, alignment, refusals, overruns, the end of a run. */
#include <string.h>

#include "check.h"
#include "morgul/assembler.h"

static uint8_t pkt[MG_LEGACY_PACKET_BYTES];

/* A packet whose pixels all hold `value`. */
static const uint8_t *make(uint64_t fn, unsigned p, unsigned row, unsigned col, uint16_t value)
{
    mg_jf_header h;
    memset(&h, 0, sizeof h);
    h.frame_number = fn;
    h.packet_number = p;
    h.row = (uint16_t)row;
    h.column = (uint16_t)col;
    h.bunch_id = fn * 10;
    h.detector_type = MG_DETECTOR_TYPE_JUNGFRAU;
    h.version = MG_HEADER_VERSION;
    memcpy(pkt, &h, sizeof h);
    uint16_t *px = (uint16_t *)(pkt + MG_HEADER_BYTES);
    for (int i = 0; i < MG_PACKET_DATA_BYTES / 2; i++)
        px[i] = value;
    return pkt;
}

static mg_assembler *new_asm(mg_detector *d, int nmod, int ifaces, int window, int slots, uint64_t max_frames,
                             int lossless)
{
    mg_detector_simple(d, "t", nmod, ifaces, "127.0.0.1", 50001, NULL, NULL);
    mg_asm_config c = {.det = d, .window = window, .slots = slots, .check_position = 1, .max_frames = max_frames,
                       .numa_node = -1, .lossless = lossless};
    mg_error e;
    mg_assembler *a = mg_asm_new(&c, &e);
    if (!a)
        fprintf(stderr, "mg_asm_new: %s\n", e.message);
    return a;
}

/* Sends frame fn on link l (module row m), all packets but `skip` (-1: none). */
static void send_frame(mg_assembler *a, int l, unsigned row, uint64_t fn, int npk, int skip)
{
    for (int p = 0; p < npk; p++)
        if (p != skip)
            mg_asm_push(a, l, make(fn, (unsigned)p, row, 0, (uint16_t)(fn * 1000 + (unsigned)p)), MG_PACKET_BYTES, 1);
}

static void test_in_order(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, 1, 1, 4, 0, 0, 0);
    for (uint64_t fn = 5; fn < 8; fn++)
        send_frame(a, 0, 0, fn, 128, -1);
    mg_frame f;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(mg_asm_next_frame(a, &f), 1);
        CHECK_EQ(f.index, i);
        CHECK(f.complete);
        CHECK_EQ(f.modules[0].frame_number, 5 + i);
        CHECK_EQ(f.modules[0].bunch_id, (5 + i) * 10);
        CHECK_EQ(f.modules[0].packets, 128);
        CHECK_EQ(f.data[0], (5 + i) * 1000);
        CHECK_EQ(f.data[127 * 4 * 1024 + 5], (5 + i) * 1000 + 127);
        mg_asm_release(a, &f);
    }
    CHECK_EQ(mg_asm_next_frame(a, &f), 0);
    mg_asm_flush(a, 0);
    CHECK_EQ(mg_asm_next_frame(a, &f), -1);
    mg_asm_free(a);
}

static void test_reverse_duplicates_two_interfaces(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, 1, 2, 4, 0, 0, 0);
    for (int p = 63; p >= 0; p--) {
        mg_asm_push(a, 1, make(1, (unsigned)p, 1, 0, (uint16_t)(500 + p)), MG_PACKET_BYTES, 1);
        mg_asm_push(a, 0, make(1, (unsigned)p, 0, 0, (uint16_t)p), MG_PACKET_BYTES, 1);
    }
    mg_asm_push(a, 0, make(1, 3, 0, 0, 7), MG_PACKET_BYTES, 1); /* duplicate after completion */
    mg_frame f;
    CHECK_EQ(mg_asm_next_frame(a, &f), 1);
    CHECK(f.complete);
    CHECK_EQ(f.data[0], 0);
    CHECK_EQ(f.data[256 * 1024], 500);            /* interface 1 packet 0 -> module row 256 */
    CHECK_EQ(f.data[511 * 1024 + 1023], 500 + 63);
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    CHECK_EQ(s.out_of_order, 63);
    CHECK_EQ(s.duplicates, 1);
    CHECK_EQ(s.packets, 64);
    mg_asm_free(a);
}

static void test_partial_and_late(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, 1, 1, 2, 8, 0, 0);
    send_frame(a, 0, 0, 1, 128, 17);
    send_frame(a, 0, 0, 2, 128, -1);
    mg_frame f;
    CHECK_EQ(mg_asm_next_frame(a, &f), 0); /* frame 1 still open: packet 17 may come */
    send_frame(a, 0, 0, 3, 128, -1);      /* window of 2 passes frame 1 */
    CHECK_EQ(mg_asm_next_frame(a, &f), 1);
    CHECK(!f.complete);
    CHECK_EQ(f.modules[0].packets, 127);
    CHECK_EQ(f.modules[0].mask[17 / 8] & (1 << (17 % 8)), 0);
    CHECK_EQ(f.modules[0].mask[16 / 8] & (1 << (16 % 8)), 1 << 0);
    CHECK_EQ(f.data[17 * 4 * 1024], MG_WORD_MISSING);
    CHECK_EQ(f.data[17 * 4 * 1024 + 4095], MG_WORD_MISSING);
    CHECK_EQ(f.data[18 * 4 * 1024], 1000 + 18);
    mg_asm_release(a, &f);
    mg_asm_push(a, 0, make(1, 17, 0, 0, 1), MG_PACKET_BYTES, 1); /* too late */
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    CHECK_EQ(s.late, 1);
    mg_asm_totals t;
    mg_asm_get_totals(a, &t);
    CHECK_EQ(t.frames_partial, 1);
    CHECK_EQ(t.packets_missing, 1);
    mg_asm_free(a);
}

static void test_alignment_and_missing_frames(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, 2, 1, 4, 0, 0, 0);
    /* module 0 counts from 18484, module 1 from 1; frame index 1 never comes */
    send_frame(a, 0, 0, 18484, 128, -1);
    send_frame(a, 1, 1, 1, 128, -1);
    send_frame(a, 0, 0, 18486, 128, -1);
    send_frame(a, 1, 1, 3, 128, -1);
    mg_frame f;
    CHECK_EQ(mg_asm_next_frame(a, &f), 1);
    CHECK_EQ(f.index, 0);
    CHECK(f.complete);
    CHECK_EQ(f.modules[0].frame_number, 18484);
    CHECK_EQ(f.modules[1].frame_number, 1);
    CHECK_EQ(f.data[MG_MODULE_PIXELS], 1000);
    mg_asm_release(a, &f);
    CHECK_EQ(mg_asm_next_frame(a, &f), 0); /* frame 1 may still come: the window of 4 is open */
    mg_asm_flush(a, 0);
    mg_asm_flush(a, 1);
    CHECK_EQ(mg_asm_next_frame(a, &f), 1);
    CHECK_EQ(f.index, 2);
    CHECK_EQ(f.modules[1].frame_number, 3);
    mg_asm_release(a, &f);
    mg_asm_totals t;
    mg_asm_get_totals(a, &t);
    CHECK_EQ(t.frames_missing, 1);
    CHECK_EQ(t.packets_missing, 256);
    mg_asm_free(a);
}

static void test_one_module_silent(void)
{
    /* module 1 sends nothing: frames close through the window and the flush */
    mg_detector d;
    mg_assembler *a = new_asm(&d, 2, 1, 2, 8, 0, 0);
    for (uint64_t fn = 1; fn <= 4; fn++) {
        send_frame(a, 0, 0, fn, 128, -1);
        mg_asm_tick(a, 1, 1);
    }
    mg_frame f;
    int n = 0;
    while (mg_asm_next_frame(a, &f) == 1) {
        CHECK(!f.complete);
        CHECK_EQ(f.modules[1].packets, 0);
        CHECK_EQ(f.modules[0].packets, 128);
        CHECK_EQ(f.data[MG_MODULE_PIXELS], MG_WORD_MISSING);
        mg_asm_release(a, &f);
        n++;
    }
    CHECK_EQ(n, 2); /* frames 1 and 2; frames 3 and 4 are within the window of 2 */
    mg_asm_flush(a, 0);
    mg_asm_flush(a, 1);
    for (int i = 2; i < 4; i++) {
        CHECK_EQ(mg_asm_next_frame(a, &f), 1);
        CHECK_EQ(f.index, i);
        mg_asm_release(a, &f);
    }
    CHECK_EQ(mg_asm_next_frame(a, &f), -1);
    mg_asm_free(a);
}

static void test_refusals(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, 1, 2, 4, 0, 0, 0);
    mg_asm_push(a, 0, make(1, 0, 0, 0, 0), 100, 1);                 /* short */
    mg_asm_push(a, 0, make(1, 0, 0, 0, 0), MG_PACKET_BYTES + 1, 1); /* long */
    mg_jf_header *h = (mg_jf_header *)make(1, 0, 0, 0, 0);
    h->detector_type = 4;
    mg_asm_push(a, 0, pkt, MG_PACKET_BYTES, 1);
    h = (mg_jf_header *)make(1, 0, 0, 0, 0);
    h->version = 1;
    mg_asm_push(a, 0, pkt, MG_PACKET_BYTES, 1);
    mg_asm_push(a, 0, make(1, 64, 0, 0, 0), MG_PACKET_BYTES, 1);   /* 2 interfaces: 0..63 */
    mg_asm_push(a, 0, make(1, 0, 1, 0, 0), MG_PACKET_BYTES, 1);    /* row of interface 1 on interface 0 */
    mg_asm_push(a, 0, make(1, 0, 0, 0, 0), MG_PACKET_BYTES, 1);    /* good */
    mg_asm_push(a, 0, make(1ull << 40, 1, 0, 0, 0), MG_PACKET_BYTES, 1); /* wild frame number */
    /* legacy 8246-byte datagram: 6 bytes before the header */
    memmove(pkt + 6, make(1, 1, 0, 0, 9), MG_PACKET_BYTES);
    memset(pkt, 0, 6);
    mg_asm_push(a, 0, pkt, MG_LEGACY_PACKET_BYTES, 1);
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    CHECK_EQ(s.rejected[MG_PACKET_BAD_SIZE], 2);
    CHECK_EQ(s.rejected[MG_PACKET_BAD_TYPE], 1);
    CHECK_EQ(s.rejected[MG_PACKET_BAD_VERSION], 1);
    CHECK_EQ(s.rejected[MG_PACKET_BAD_NUMBER], 1);
    CHECK_EQ(s.rejected[MG_PACKET_BAD_POSITION], 1);
    CHECK_EQ(s.rejected[MG_PACKET_BAD_FRAME], 1);
    CHECK_EQ(s.packets, 2);
    mg_asm_free(a);
}

static void test_overrun_and_lossless(void)
{
    mg_detector d;
    /* 4 slots, window 2: frames 0..3 fit; frame 4 needs frame 0's buffer back */
    mg_assembler *a = new_asm(&d, 1, 1, 2, 4, 0, 0);
    for (uint64_t fn = 1; fn <= 4; fn++)
        send_frame(a, 0, 0, fn, 128, -1);
    mg_frame f0;
    CHECK_EQ(mg_asm_next_frame(a, &f0), 1); /* taken downstream, not given back */
    send_frame(a, 0, 0, 5, 128, -1);
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    CHECK_EQ(s.overrun, 128);
    mg_asm_release(a, &f0);
    mg_frame f;
    while (mg_asm_next_frame(a, &f) == 1)
        mg_asm_release(a, &f);
    send_frame(a, 0, 0, 6, 128, -1); /* buffers free again */
    mg_asm_link_stats(a, 0, &s);
    CHECK_EQ(s.overrun, 128);
    CHECK_EQ(s.packets, 5 * 128);
    mg_asm_free(a);

    a = new_asm(&d, 1, 1, 2, 4, 0, 1);
    for (uint64_t fn = 1; fn <= 4; fn++)
        send_frame(a, 0, 0, fn, 128, -1);
    CHECK_EQ(mg_asm_next_frame(a, &f0), 1);
    CHECK_EQ(mg_asm_push(a, 0, make(5, 0, 0, 0, 0), MG_PACKET_BYTES, 1), MG_ASM_RETRY);
    mg_asm_release(a, &f0);
    mg_asm_next_frame(a, &f); /* reaps frame 0's buffer */
    mg_asm_release(a, &f);
    CHECK_EQ(mg_asm_push(a, 0, make(5, 0, 0, 0, 0), MG_PACKET_BYTES, 1), 0);
    mg_asm_link_stats(a, 0, &s);
    CHECK_EQ(s.overrun, 0);
    CHECK_EQ(s.out_of_order, 0);
    mg_asm_free(a);
}

static void test_max_frames(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, 1, 1, 4, 0, 2, 0);
    for (uint64_t fn = 1; fn <= 3; fn++)
        send_frame(a, 0, 0, fn, 128, -1);
    mg_frame f;
    CHECK_EQ(mg_asm_next_frame(a, &f), 1);
    mg_asm_release(a, &f);
    CHECK_EQ(mg_asm_next_frame(a, &f), 1);
    mg_asm_release(a, &f);
    CHECK_EQ(mg_asm_next_frame(a, &f), -1);
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    CHECK_EQ(s.after_end, 128);
    mg_asm_free(a);
}

static void test_timeout(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, 1, 1, 16, 0, 0, 0);
    for (int p = 0; p < 100; p++)
        mg_asm_push(a, 0, make(1, (unsigned)p, 0, 0, 0), MG_PACKET_BYTES, 1000);
    mg_frame f;
    mg_asm_tick(a, 0, 1000 + 50000000ull); /* 50 ms: still waiting */
    CHECK_EQ(mg_asm_next_frame(a, &f), 0);
    mg_asm_tick(a, 0, 1000 + 150000000ull); /* 150 ms of silence: the frame closes partial */
    CHECK_EQ(mg_asm_next_frame(a, &f), 1);
    CHECK(!f.complete);
    CHECK_EQ(f.modules[0].packets, 100);
    mg_asm_free(a);
}

static void test_by_reference(void)
{
    mg_detector d;
    mg_detector_simple(&d, "t", 1, 2, "127.0.0.1", 50001, NULL, NULL);
    mg_asm_config c = {.det = &d, .window = 4, .check_position = 1, .numa_node = -1, .by_reference = 1};
    mg_assembler *a = mg_asm_new(&c, NULL);
    static uint8_t store[128][MG_PACKET_BYTES];
    for (int i = 0; i < 2; i++)
        for (int p = 0; p < 64; p++) {
            if (i == 1 && p == 5)
                continue;
            memcpy(store[i * 64 + p], make(100, (unsigned)p, (unsigned)i, 0, (uint16_t)(i * 64 + p)), MG_PACKET_BYTES);
            mg_asm_push_offline(a, i, store[i * 64 + p], MG_PACKET_BYTES, 1, 7); /* frame 107 */
        }
    mg_asm_flush(a, 0);
    mg_asm_flush(a, 1);
    mg_frame f;
    CHECK_EQ(mg_asm_next_frame(a, &f), 1);
    CHECK(f.data == NULL);
    CHECK_EQ(f.nblocks, 128);
    CHECK_EQ(f.modules[0].frame_number, 107);
    CHECK_EQ(f.modules[0].packets, 127);
    CHECK(f.blocks[3] == (const uint16_t *)(store[3] + MG_HEADER_BYTES)); /* pointed to, not copied */
    CHECK_EQ(f.blocks[64 + 2][0], 66);
    CHECK_EQ(f.blocks[64 + 5][0], MG_WORD_MISSING);
    CHECK_EQ(f.blocks[64 + 5][4095], MG_WORD_MISSING);
    mg_asm_release(a, &f);
    mg_asm_free(a);
}

/* Modules received on different NUMA nodes get their rows from a pool each. */
static void test_module_pools(void)
{
    mg_detector d;
    mg_detector_simple(&d, "t", 2, 1, "127.0.0.1", 50001, NULL, NULL);
    const int nodes[2] = {0, 1};
    mg_asm_config c = {.det = &d, .window = 4, .check_position = 1, .numa_node = -1, .module_node = nodes};
    mg_assembler *a = mg_asm_new(&c, NULL);
    send_frame(a, 0, 0, 1, 128, -1);
    send_frame(a, 1, 1, 1, 128, 9);
    mg_asm_flush(a, 0);
    mg_asm_flush(a, 1);
    mg_frame f;
    CHECK_EQ(mg_asm_next_frame(a, &f), 1);
    CHECK(f.data == NULL);
    CHECK_EQ(f.module_data[0][5 * 4096], 1005);
    CHECK_EQ(f.module_data[1][10 * 4096 + 7], 1010);
    CHECK_EQ(f.module_data[1][9 * 4096], MG_WORD_MISSING);
    CHECK(f.blocks[128 + 10] == f.module_data[1] + 10 * 4096);
    mg_asm_release(a, &f);
    mg_asm_free(a);
}

static void test_bad_config(void)
{
    mg_detector d;
    mg_detector_simple(&d, "t", 1, 1, "127.0.0.1", 50001, NULL, NULL);
    mg_asm_config c = {.det = &d, .window = 16, .slots = 8, .numa_node = -1};
    mg_error e;
    CHECK(mg_asm_new(&c, &e) == NULL);
    CHECK(strstr(e.message, "too few") != NULL);
}

int main(void)
{
    RUN(test_in_order);
    RUN(test_reverse_duplicates_two_interfaces);
    RUN(test_partial_and_late);
    RUN(test_alignment_and_missing_frames);
    RUN(test_one_module_silent);
    RUN(test_refusals);
    RUN(test_overrun_and_lossless);
    RUN(test_max_frames);
    RUN(test_timeout);
    RUN(test_by_reference);
    RUN(test_module_pools);
    RUN(test_bad_config);
    return CHECK_DONE();
}
