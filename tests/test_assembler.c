/* test_assembler.c - frame assembly in one thread: order, duplicates, late
 * packets, evidence before trust (stray packets ahead, before the start,
 * forged and random ones), alignment of modules, lagging links,
 * acquisitions, missing frames keeping their place, partial readout,
 * refusals, overruns, the end of a run.  Time is simulated: frame n of a
 * stream arrives at n ms. */
#include <string.h>

#include "check.h"
#include "morgul/assembler.h"

#define MS 1000000ull

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

typedef struct opts {
    int nmod, ifaces, reorder, slots, lossless, readnrows;
    uint64_t max_frames;
    mg_align align;
} opts;

static mg_assembler *new_asm(mg_detector *d, opts o)
{
    mg_detector_simple(d, "t", o.nmod ? o.nmod : 1, o.ifaces ? o.ifaces : 1, "127.0.0.1", 50001, NULL, NULL);
    mg_asm_config c = {.det = d, .reorder = o.reorder, .slots = o.slots ? o.slots : 128, .check_position = 1,
                       .max_frames = o.max_frames, .numa_node = -1, .lossless = o.lossless, .align = o.align,
                       .readnrows = o.readnrows, .rate_hz = 2000};
    mg_error e;
    mg_assembler *a = mg_asm_new(&c, &e);
    if (!a)
        fprintf(stderr, "mg_asm_new: %s\n", e.message);
    return a;
}

/* Sends frame fn on link l (header row `row`), all packets of the interface
 * but `skip` (-1: none), at time t; pixel value fn * 1000 + packet. */
static void send_at(mg_assembler *a, int l, unsigned row, uint64_t fn, int npk, int skip, uint64_t t)
{
    for (int p = 0; p < npk; p++)
        if (p != skip)
            mg_asm_push(a, l, make(fn, (unsigned)p, row, 0, (uint16_t)(fn * 1000 + (unsigned)p)), MG_PACKET_BYTES, t);
}

static void send_frame(mg_assembler *a, int l, unsigned row, uint64_t fn, int npk, int skip)
{
    send_at(a, l, row, fn, npk, skip, fn * MS);
}

static void flush_all(mg_assembler *a, int nlinks)
{
    for (int l = 0; l < nlinks; l++)
        mg_asm_flush(a, l);
}

/* Takes every image that is ready; checks image i of acquisition `acq` has
 * frame number fns[i] on module 0 (module m: fns[i] + off[m]) and is complete.
 * Returns the number taken. */
static int take_all(mg_assembler *a, mg_frame *out, int cap)
{
    int n = 0;
    mg_frame f;
    while (n < cap && mg_asm_next_frame(a, &f) == 1) {
        out[n++] = f;
        mg_asm_release(a, &f);
    }
    return n;
}

static void test_in_order(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.reorder = 4});
    for (uint64_t fn = 5; fn < 8; fn++)
        send_frame(a, 0, 0, fn, 128, -1);
    mg_frame f;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(mg_asm_next_frame(a, &f), 1);
        CHECK_EQ(f.index, i);
        CHECK_EQ(f.acquisition, 0);
        CHECK(f.complete && !f.missing);
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
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    CHECK_EQ(s.packets, 3 * 128);
    CHECK_EQ(s.stray, 0);
    mg_asm_free(a);
}

static void test_reverse_duplicates_two_interfaces(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.ifaces = 2, .reorder = 4});
    for (int p = 63; p >= 0; p--) {
        mg_asm_push(a, 1, make(1, (unsigned)p, 1, 0, (uint16_t)(500 + p)), MG_PACKET_BYTES, MS);
        mg_asm_push(a, 0, make(1, (unsigned)p, 0, 0, (uint16_t)p), MG_PACKET_BYTES, MS);
    }
    mg_asm_push(a, 0, make(1, 3, 0, 0, 7), MG_PACKET_BYTES, MS); /* duplicate after completion */
    mg_asm_flush(a, 0); /* a packet behind the link's frames is counted once it is clear it is nothing else */
    mg_asm_flush(a, 1);
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
    mg_assembler *a = new_asm(&d, (opts){.reorder = 2});
    send_frame(a, 0, 0, 1, 128, 17);
    send_frame(a, 0, 0, 2, 128, -1);
    mg_frame f;
    CHECK_EQ(mg_asm_next_frame(a, &f), 0); /* frame 1 still open: packet 17 may come */
    send_frame(a, 0, 0, 3, 128, -1);      /* 2 frames of reordering pass frame 1 */
    CHECK_EQ(mg_asm_next_frame(a, &f), 1);
    CHECK(!f.complete && !f.missing);
    CHECK_EQ(f.modules[0].packets, 127);
    CHECK_EQ(f.modules[0].mask[17 / 8] & (1 << (17 % 8)), 0);
    CHECK_EQ(f.modules[0].mask[16 / 8] & (1 << (16 % 8)), 1 << 0);
    CHECK_EQ(f.data[17 * 4 * 1024], MG_WORD_MISSING);
    CHECK_EQ(f.data[17 * 4 * 1024 + 4095], MG_WORD_MISSING);
    CHECK_EQ(f.data[18 * 4 * 1024], 1000 + 18);
    mg_asm_release(a, &f);
    mg_asm_push(a, 0, make(1, 17, 0, 0, 1), MG_PACKET_BYTES, 3 * MS); /* too late, while the stream goes on */
    send_frame(a, 0, 0, 4, 128, -1);
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    CHECK_EQ(s.late, 1);
    CHECK_EQ(s.stray, 0);
    mg_asm_totals t;
    mg_asm_get_totals(a, &t);
    CHECK_EQ(t.frames_partial, 1);
    CHECK_EQ(t.packets_missing, 1);
    mg_asm_free(a);
}

/* Frames 1..n of one module sent with `stray` packets pushed at packet 40
 * of frame `at`; the images must be exactly the real frames. */
static void run_with_strays(const uint64_t *stray, int nstray, uint64_t at, int n)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){0});
    for (uint64_t fn = 1; fn <= (uint64_t)n; fn++) {
        for (int p = 0; p < 128; p++) {
            if (fn == at && p == 40)
                for (int i = 0; i < nstray; i++)
                    mg_asm_push(a, 0, make(stray[i], (unsigned)(i % 128), 0, 0, 0xBEEF), MG_PACKET_BYTES, fn * MS);
            mg_asm_push(a, 0, make(fn, (unsigned)p, 0, 0, (uint16_t)(fn * 1000 + (unsigned)p)), MG_PACKET_BYTES,
                        fn * MS);
        }
    }
    mg_asm_flush(a, 0);
    mg_frame f[64];
    int got = take_all(a, f, 64);
    CHECK_EQ(got, n);
    for (int i = 0; i < got; i++) {
        CHECK(f[i].complete);
        CHECK_EQ(f[i].index, i);
        CHECK_EQ(f[i].modules[0].frame_number, (uint64_t)i + 1);
        CHECK_EQ(f[i].data[40 * 4096], (i + 1) * 1000 + 40);
    }
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    CHECK_EQ(s.stray, (uint64_t)nstray);
    CHECK_EQ(s.packets, (uint64_t)n * 128);
    mg_asm_totals t;
    mg_asm_get_totals(a, &t);
    CHECK_EQ(t.acquisitions, 1);
    mg_asm_free(a);
}

static void test_stray_ahead(void)
{
    /* one datagram 16, 5000 or 2^40 frames ahead moves nothing */
    uint64_t ahead[] = {16, 5000, 1ull << 40};
    for (int i = 0; i < 3; i++) {
        uint64_t s = 5 + ahead[i];
        run_with_strays(&s, 1, 5, 20);
    }
}

static void test_stray_before_start(void)
{
    /* one stray packet before the detector starts decides nothing */
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){0});
    mg_asm_push(a, 0, make(777777, 3, 0, 0, 1), MG_PACKET_BYTES, 0);
    for (uint64_t fn = 1; fn <= 5; fn++)
        send_frame(a, 0, 0, fn, 128, -1);
    mg_asm_flush(a, 0);
    mg_frame f[8];
    CHECK_EQ(take_all(a, f, 8), 5);
    CHECK_EQ(f[0].modules[0].frame_number, 1);
    CHECK(f[4].complete);
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    CHECK_EQ(s.stray, 1);
    mg_asm_free(a);
}

static void test_lossy_start(void)
{
    /* frame 1 with 4 packets (too few to be evidence on its own), frame 2 lost, then whole frames: frame 1
     * joins its stream once frame 3 is evidence, frame 2 keeps its place */
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){0});
    for (unsigned p = 10; p < 14; p++)
        mg_asm_push(a, 0, make(1, p, 0, 0, 1), MG_PACKET_BYTES, MS);
    for (uint64_t fn = 3; fn <= 5; fn++)
        send_frame(a, 0, 0, fn, 128, -1);
    mg_asm_flush(a, 0);
    mg_frame f[8];
    CHECK_EQ(take_all(a, f, 8), 5);
    CHECK_EQ(f[0].modules[0].frame_number, 1);
    CHECK_EQ(f[0].modules[0].packets, 4);
    CHECK(f[1].missing);
    CHECK(f[2].complete && f[2].modules[0].frame_number == 3);
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    CHECK_EQ(s.stray, 0);
    mg_asm_free(a);
}

static void test_forged_walk(void)
{
    /* 2000 forged packets walking forward by up to 100000 frames each, spread over a real stream */
    uint64_t forged[2000], x = 40, seed = 12345;
    for (int i = 0; i < 2000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x += 2 + (seed >> 33) % 100000;
        forged[i] = x;
    }
    run_with_strays(forged, 2000, 3, 10);
}

static void test_random_datagrams(void)
{
    /* random bytes with JUNGFRAU's size, type and version: refused or stray, never a frame */
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){0});
    uint64_t seed = 99;
    for (uint64_t fn = 1; fn <= 10; fn++) {
        for (int p = 0; p < 128; p++) {
            if (p % 16 == 5) {
                static uint8_t junk[MG_PACKET_BYTES];
                for (size_t i = 0; i < sizeof junk; i++) {
                    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                    junk[i] = (uint8_t)(seed >> 56);
                }
                mg_jf_header *h = (mg_jf_header *)junk;
                h->detector_type = MG_DETECTOR_TYPE_JUNGFRAU;
                h->version = MG_HEADER_VERSION;
                if (p % 32 == 5) { /* some also with a plausible packet number and position */
                    h->packet_number %= 128;
                    h->row = h->column = 0;
                }
                mg_asm_push(a, 0, junk, MG_PACKET_BYTES, fn * MS);
            }
            mg_asm_push(a, 0, make(fn, (unsigned)p, 0, 0, (uint16_t)p), MG_PACKET_BYTES, fn * MS);
        }
    }
    mg_asm_flush(a, 0);
    mg_frame f[16];
    CHECK_EQ(take_all(a, f, 16), 10);
    for (int i = 0; i < 10; i++)
        CHECK(f[i].complete && f[i].modules[0].frame_number == (uint64_t)i + 1 && f[i].data[4096 * 7] == 7);
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    uint64_t refused = s.stray;
    for (int v = 1; v < MG_PACKET_VERDICT_COUNT; v++)
        refused += s.rejected[v];
    CHECK_EQ(refused, 80);
    CHECK_EQ(s.packets, 1280);
    mg_asm_free(a);
}

/* Two modules, one interface each: module 0 sends frames 1..n, module 1 the
 * same numbers but not frame 1, and a stray packet on module 1's port before
 * it starts: every image pairs the same frame number. */
static void test_module_loses_first_frame(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.nmod = 2});
    mg_asm_push(a, 1, make(424242, 0, 1, 0, 0), MG_PACKET_BYTES, 0);
    for (uint64_t fn = 1; fn <= 6; fn++) {
        send_frame(a, 0, 0, fn, 128, -1);
        if (fn > 1)
            send_frame(a, 1, 1, fn, 128, -1);
    }
    flush_all(a, 2);
    mg_frame f[8];
    CHECK_EQ(take_all(a, f, 8), 6);
    CHECK_EQ(f[0].modules[1].packets, 0);
    CHECK(!f[0].complete);
    for (int i = 0; i < 6; i++) {
        CHECK_EQ(f[i].modules[0].frame_number, (uint64_t)i + 1);
        CHECK_EQ(f[i].modules[1].frame_number, (uint64_t)i + 1);
        if (i > 0)
            CHECK_EQ(f[i].module_data[1][0], (i + 1) * 1000); /* the same exposure on both modules */
    }
    mg_asm_free(a);
}

/* The vendor's virtual detector: module 0 counts from 18484, module 1 from 1,
 * frames 9 ms apart, module 1's 1.3 ms after module 0's. */
static void test_pairing_by_arrival(void)
{
    for (int mode = 0; mode < 2; mode++) {
        mg_detector d;
        mg_assembler *a = new_asm(&d, (opts){.nmod = 2, .align = mode ? MG_ALIGN_NUMBER : MG_ALIGN_AUTO});
        for (uint64_t i = 0; i < 4; i++) {
            send_at(a, 0, 0, 18484 + i, 128, -1, 1000 * MS + i * 9 * MS);
            send_at(a, 1, 1, 1 + i, 128, -1, 1000 * MS + i * 9 * MS + 1300000);
        }
        flush_all(a, 2);
        mg_frame f[8];
        int n = take_all(a, f, 8);
        CHECK_EQ(n, 4);
        mg_acq_info q;
        mg_asm_acquisition(a, 0, &q);
        mg_link_stats s;
        mg_asm_link_stats(a, 1, &s);
        if (mode == 0) {
            for (int i = 0; i < n; i++) {
                CHECK(f[i].complete);
                CHECK_EQ(f[i].modules[1].frame_number, (uint64_t)i + 1);
                CHECK_EQ(f[i].module_data[1][5], (i + 1) * 1000);
            }
            CHECK_EQ(q.pairing[1], MG_PAIRED_ARRIVAL);
            CHECK_EQ(q.offset[1], 1 - 18484);
            CHECK_EQ(s.stray, 0);
        } else { /* --align number: module 1 is refused, counted, reported */
            for (int i = 0; i < n; i++)
                CHECK(!f[i].complete && f[i].modules[1].packets == 0);
            CHECK_EQ(q.pairing[1], MG_PAIRED_REFUSED);
            CHECK_EQ(s.stray, 4 * 128);
        }
        mg_asm_free(a);
    }
}

static void test_pairing_by_bunch_id(void)
{
    /* module 1's numbers are 1000 lower and it arrives a whole frame late: the bunch ids say which is which */
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.nmod = 2});
    for (uint64_t i = 0; i < 5; i++) {
        send_at(a, 0, 0, 2000 + i, 128, -1, i * MS);
        if (i >= 1) { /* module 1's frame i-1, with module 0's bunch id of frame i-1 */
            for (int p = 0; p < 128; p++) {
                make(1000 + i - 1, (unsigned)p, 1, 0, (uint16_t)((i - 1) * 7));
                ((mg_jf_header *)pkt)->bunch_id = (2000 + i - 1) * 10;
                mg_asm_push(a, 1, pkt, MG_PACKET_BYTES, i * MS + 10000);
            }
        }
    }
    flush_all(a, 2);
    mg_frame f[8];
    int n = take_all(a, f, 8);
    CHECK_EQ(n, 5);
    mg_acq_info q;
    mg_asm_acquisition(a, 0, &q);
    CHECK_EQ(q.pairing[1], MG_PAIRED_BUNCH);
    CHECK_EQ(q.offset[1], -1000);
    for (int i = 0; i < 4; i++) {
        CHECK(f[i].complete);
        CHECK_EQ(f[i].modules[1].bunch_id, f[i].modules[0].bunch_id);
        CHECK_EQ(f[i].module_data[1][0], i * 7);
    }
    mg_asm_free(a);
}

/* Module 1's packets come 50 frames after module 0's (a delayed link, or a
 * receiving thread that did not run for 50 ms): nothing is lost. */
static void test_lagging_link(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.nmod = 2, .slots = 128});
    mg_frame f[128];
    int n = 0;
    for (uint64_t fn = 1; fn <= 100; fn++) {
        send_frame(a, 0, 0, fn, 128, -1);
        if (fn > 50)
            send_at(a, 1, 1, fn - 50, 128, -1, fn * MS);
        n += take_all(a, f + n, 128 - n);
    }
    for (uint64_t fn = 51; fn <= 100; fn++) {
        send_at(a, 1, 1, fn, 128, -1, 101 * MS);
        n += take_all(a, f + n, 128 - n);
    }
    flush_all(a, 2);
    n += take_all(a, f + n, 128 - n);
    CHECK_EQ(n, 100);
    for (int i = 0; i < n; i++)
        CHECK(f[i].complete && f[i].modules[1].frame_number == (uint64_t)i + 1);
    for (int l = 0; l < 2; l++) {
        mg_link_stats s;
        mg_asm_link_stats(a, l, &s);
        CHECK_EQ(s.late + s.lagged + s.overrun + s.stray, 0);
    }
    mg_asm_free(a);
}

/* A link further behind than the frame buffers allow: its oldest frames are
 * closed for everybody and its packets for them are counted as lagged. */
static void test_lag_beyond_buffers(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.nmod = 2, .slots = 64}); /* span 47 frames */
    mg_frame f[256];
    int n = 0;
    for (uint64_t fn = 1; fn <= 120; fn++) { /* module 1 is 60 frames (60 ms) behind */
        send_frame(a, 0, 0, fn, 128, -1);
        if (fn > 60)
            send_at(a, 1, 1, fn - 60, 128, -1, fn * MS);
        else
            mg_asm_tick(a, 1, fn * MS);
        n += take_all(a, f + n, 256 - n);
    }
    for (uint64_t fn = 61; fn <= 120; fn++) {
        send_at(a, 1, 1, fn, 128, -1, 121 * MS);
        n += take_all(a, f + n, 256 - n);
    }
    flush_all(a, 2);
    n += take_all(a, f + n, 256 - n);
    CHECK_EQ(n, 120);
    mg_link_stats s0, s1;
    mg_asm_link_stats(a, 0, &s0);
    mg_asm_link_stats(a, 1, &s1);
    CHECK_EQ(s0.overrun + s0.late + s0.lagged, 0);
    CHECK(s1.lagged > 0);
    CHECK_EQ(s1.packets + s1.lagged, 120 * 128);
    CHECK_EQ(s1.late + s1.overrun + s1.stray, 0);
    mg_asm_free(a);
}

/* Frames 1..10, a pause, then the counter restarts at 1 (a second
 * acquisition) and later jumps to 1000000: three acquisitions, all kept. */
static void test_counter_reset_and_jump(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.nmod = 2});
    uint64_t t = MS;
    uint64_t starts[3] = {1, 1, 1000000};
    for (int acq = 0; acq < 3; acq++) {
        for (uint64_t i = 0; i < 10; i++, t += MS) {
            send_at(a, 0, 0, starts[acq] + i, 128, -1, t);
            send_at(a, 1, 1, starts[acq] + i, 128, -1, t);
        }
        t += 50 * MS; /* the detector is stopped and started again */
    }
    flush_all(a, 2);
    mg_frame f[40];
    int n = take_all(a, f, 40);
    CHECK_EQ(n, 30);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(f[i].acquisition, i / 10);
        CHECK_EQ(f[i].index, i % 10);
        CHECK(f[i].complete);
        CHECK_EQ(f[i].modules[0].frame_number, starts[i / 10] + (uint64_t)(i % 10));
        CHECK_EQ(f[i].modules[1].frame_number, starts[i / 10] + (uint64_t)(i % 10));
    }
    mg_asm_totals tot;
    mg_asm_get_totals(a, &tot);
    CHECK_EQ(tot.acquisitions, 3);
    mg_acq_info q;
    mg_asm_acquisition(a, 1, &q);
    CHECK_EQ(q.images, 10);
    CHECK_EQ(q.skipped, -1); /* restarted */
    mg_asm_acquisition(a, 2, &q);
    CHECK_EQ(q.first_number, 1000000);
    CHECK_EQ(q.skipped, 1000000 - 10 - 1);
    for (int l = 0; l < 2; l++) {
        mg_link_stats s;
        mg_asm_link_stats(a, l, &s);
        CHECK_EQ(s.stray + s.late, 0);
        CHECK_EQ(s.packets, 30 * 128);
    }
    mg_asm_free(a);
}

/* Numbers that go on after a pause are the same acquisition; a restart
 * soon after that pause is still recognised (the pause is not taken for the
 * detector's frame period). */
static void test_pause_then_restart(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){0});
    uint64_t t = 1000 * MS;
    for (uint64_t fn = 1; fn <= 20; fn++, t += MS) {
        if (fn == 11)
            t += 5000 * MS; /* stopped for 5 s, then started with the counter going on */
        send_at(a, 0, 0, fn, 128, -1, t);
    }
    t += 30 * MS;
    for (uint64_t fn = 1; fn <= 5; fn++, t += MS)
        send_at(a, 0, 0, fn, 128, -1, t);
    mg_asm_flush(a, 0);
    mg_frame f[32];
    CHECK_EQ(take_all(a, f, 32), 25);
    CHECK_EQ(f[19].acquisition, 0);
    CHECK_EQ(f[19].modules[0].frame_number, 20);
    CHECK_EQ(f[20].acquisition, 1);
    CHECK_EQ(f[20].modules[0].frame_number, 1);
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    CHECK_EQ(s.stray + s.late + s.duplicates, 0);
    mg_asm_free(a);
}

/* After a pause in frame 11 (40 packets of it before, the rest late): 20
 * images of one acquisition, every one but frame 11 whole on each of the
 * nmod modules, and nothing else counted.  Frees the assembler. */
static void check_paused(mg_assembler *a, int nmod)
{
    mg_frame f[32];
    CHECK_EQ(take_all(a, f, 32), 20);
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(f[i].acquisition, 0);
        CHECK_EQ(f[i].complete, i != 10);
        for (int m = 0; m < nmod; m++)
            CHECK_EQ(f[i].modules[m].frame_number, (uint64_t)i + 1);
    }
    for (int m = 0; m < nmod; m++) {
        CHECK_EQ(f[10].modules[m].packets, 40);
        mg_link_stats s;
        mg_asm_link_stats(a, m, &s);
        CHECK_EQ(s.late + s.lagged, 88);
        CHECK_EQ(s.stray + s.duplicates, 0);
    }
    mg_asm_free(a);
}

/* The detector stops for 300 ms in the middle of frame 11 and goes on where
 * it stopped: frame 11 closes partial at the frame timeout, the rest of its
 * packets are late, and the stream that goes on is the same acquisition (not
 * a counter restart: none of its packets is one the link has). */
static void test_pause_mid_frame(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){0});
    uint64_t t = 1000 * MS;
    for (uint64_t fn = 1; fn <= 10; fn++, t += MS)
        send_at(a, 0, 0, fn, 128, -1, t);
    for (unsigned p = 0; p < 40; p++)
        mg_asm_push(a, 0, make(11, p, 0, 0, 0), MG_PACKET_BYTES, t);
    t += 300 * MS;
    mg_asm_tick(a, 0, t); /* 300 ms of silence: frame 11 closes */
    for (unsigned p = 40; p < 128; p++)
        mg_asm_push(a, 0, make(11, p, 0, 0, 0), MG_PACKET_BYTES, t);
    for (uint64_t fn = 12; fn <= 20; fn++, t += MS)
        send_at(a, 0, 0, fn, 128, -1, t + MS);
    flush_all(a, 1);
    check_paused(a, 1);
}

/* Both modules stop for 300 ms in the middle of frame 11 and go on; module
 * 1's thread runs later than module 0's (a busy machine): when it finds its
 * socket empty, 300 ms after its last packet, module 0 has already taken
 * frames 12 and 13.  Module 1 gives up frame 11 (begun before the pause),
 * not 12 and 13, which began only just now: they come whole from it. */
static void test_pause_with_a_link_read_late(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.nmod = 2});
    uint64_t t = 1000 * MS;
    for (uint64_t fn = 1; fn <= 10; fn++, t += MS)
        for (int l = 0; l < 2; l++)
            send_at(a, l, (unsigned)l, fn, 128, -1, t);
    for (int l = 0; l < 2; l++)
        for (unsigned p = 0; p < 40; p++)
            mg_asm_push(a, l, make(11, p, (unsigned)l, 0, 0), MG_PACKET_BYTES, t);
    t += 300 * MS;
    mg_asm_tick(a, 0, t); /* module 0: 300 ms of silence, frame 11 closes */
    for (unsigned p = 40; p < 128; p++)
        mg_asm_push(a, 0, make(11, p, 0, 0, 0), MG_PACKET_BYTES, t);
    for (uint64_t fn = 12; fn <= 13; fn++)
        send_at(a, 0, 0, fn, 128, -1, t + (fn - 11) * MS);
    mg_asm_tick(a, 1, t); /* module 1 finds its socket empty as of the end of the pause */
    mg_asm_tick(a, 1, t + 3 * MS); /* or a little later, its packets of 12 and 13 already waiting */
    for (unsigned p = 40; p < 128; p++)
        mg_asm_push(a, 1, make(11, p, 1, 0, 0), MG_PACKET_BYTES, t);
    for (uint64_t fn = 12; fn <= 20; fn++)
        for (int l = fn <= 13; l < 2; l++)
            send_at(a, l, (unsigned)l, fn, 128, -1, t + (fn - 11) * MS);
    flush_all(a, 2);
    check_paused(a, 2);
}

/* Packets of frame 3 held up somewhere arrive after frame 20 (frame 3 is
 * closed: more than the reorder window behind), in a pause of the stream:
 * they fill what frame 3 lacks, so they are late, not the first of a
 * restarted counter, and the acquisition goes on. */
static void test_delayed_packets_in_a_pause(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){0});
    uint64_t t = 1000 * MS;
    for (uint64_t fn = 1; fn <= 20; fn++, t += MS)
        for (unsigned p = 0; p < 128; p++)
            if (fn != 3 || p < 100 || p >= 110)
                mg_asm_push(a, 0, make(fn, p, 0, 0, 0), MG_PACKET_BYTES, t);
    t += 5 * MS; /* every link quiet for longer than quiet_ns */
    for (unsigned p = 100; p < 110; p++)
        mg_asm_push(a, 0, make(3, p, 0, 0, 0), MG_PACKET_BYTES, t);
    for (uint64_t fn = 21; fn <= 30; fn++, t += MS)
        send_at(a, 0, 0, fn, 128, -1, t + MS);
    mg_asm_flush(a, 0);
    mg_frame f[40];
    CHECK_EQ(take_all(a, f, 40), 30);
    for (int i = 0; i < 30; i++) {
        CHECK_EQ(f[i].acquisition, 0);
        CHECK_EQ(f[i].modules[0].frame_number, (uint64_t)i + 1);
    }
    CHECK_EQ(f[2].modules[0].packets, 118);
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    CHECK_EQ(s.late + s.lagged, 10);
    mg_asm_free(a);
}

/* A counter that restarts on one module while the other goes on is not a
 * new acquisition: that module's packets are stray. */
static void test_one_module_restarts(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.nmod = 2});
    for (uint64_t fn = 1; fn <= 20; fn++) {
        send_frame(a, 0, 0, fn, 128, -1);
        send_at(a, 1, 1, fn <= 10 ? fn : fn - 10, 128, -1, fn * MS);
    }
    flush_all(a, 2);
    mg_frame f[32];
    CHECK_EQ(take_all(a, f, 32), 20);
    mg_asm_totals tot;
    mg_asm_get_totals(a, &tot);
    CHECK_EQ(tot.acquisitions, 1);
    mg_link_stats s;
    mg_asm_link_stats(a, 1, &s);
    /* frame numbers it sent before: duplicates of packets it already gave (or late, or stray) */
    CHECK_EQ(s.stray + s.late + s.duplicates, 10 * 128);
    CHECK_EQ(s.packets, 10 * 128);
    CHECK(f[5].complete && !f[15].complete);
    mg_asm_free(a);
}

/* Frames 5..8 never come: images 4..7 are missing images, in their place. */
static void test_gap_keeps_places(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.nmod = 1});
    for (uint64_t fn = 1; fn <= 12; fn++)
        if (fn < 5 || fn > 8)
            send_frame(a, 0, 0, fn, 128, -1);
    mg_asm_flush(a, 0);
    mg_frame f[16];
    CHECK_EQ(take_all(a, f, 16), 12);
    for (int i = 0; i < 12; i++) {
        CHECK_EQ(f[i].index, i);
        CHECK_EQ(f[i].modules[0].frame_number, (uint64_t)i + 1);
        int gap = i >= 4 && i <= 7;
        CHECK_EQ(f[i].missing, gap);
        CHECK_EQ(f[i].modules[0].packets, gap ? 0 : 128);
        CHECK_EQ(f[i].data[100], gap ? (int)MG_WORD_MISSING : (i + 1) * 1000);
    }
    mg_asm_totals t;
    mg_asm_get_totals(a, &t);
    CHECK_EQ(t.frames_missing, 4);
    CHECK_EQ(t.packets_missing, 4 * 128);
    mg_asm_free(a);
}

static void test_partial_readout(void)
{
    /* readnrows 32: 8 packets per module around its centre, q = 60..67 (2 interfaces: 60..63 and 0..3) */
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.ifaces = 2, .readnrows = 32});
    CHECK_EQ(mg_asm_expected_packets(a), 8);
    for (uint64_t fn = 1; fn <= 4; fn++)
        for (int p = 0; p < 4; p++) {
            mg_asm_push(a, 0, make(fn, (unsigned)(60 + p), 0, 0, 1), MG_PACKET_BYTES, fn * MS);
            mg_asm_push(a, 1, make(fn, (unsigned)p, 1, 0, 2), MG_PACKET_BYTES, fn * MS);
        }
    flush_all(a, 2);
    mg_frame f[8];
    CHECK_EQ(take_all(a, f, 8), 4);
    for (int i = 0; i < 4; i++) {
        CHECK(f[i].complete);
        CHECK_EQ(f[i].modules[0].packets, 8);
        CHECK_EQ(f[i].data[60 * 4096], 1);
        CHECK_EQ(f[i].data[64 * 4096], 2);
        CHECK_EQ(f[i].data[0], MG_WORD_MISSING);
    }
    mg_asm_totals t;
    mg_asm_get_totals(a, &t);
    CHECK_EQ(t.packets_missing, 0);
    uint8_t m[16];
    CHECK_EQ(mg_readout_mask(8, m), 2);
    CHECK_EQ(m[7], 0x80);
    CHECK_EQ(m[8], 0x01);
    CHECK_EQ(mg_readout_mask(0, m), 128);
    mg_asm_free(a);
}

static void test_one_module_silent(void)
{
    /* module 1 sends nothing: frames close when its link has been silent for the frame timeout */
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.nmod = 2, .reorder = 2});
    for (uint64_t fn = 1; fn <= 4; fn++) {
        send_frame(a, 0, 0, fn, 128, -1);
        mg_asm_tick(a, 1, fn * MS);
    }
    mg_frame f[8];
    CHECK_EQ(take_all(a, f, 8), 0); /* module 1 may still come */
    mg_asm_tick(a, 1, 200 * MS);   /* silent far beyond the frame timeout */
    int n = take_all(a, f, 8);
    CHECK_EQ(n, 4);
    for (int i = 0; i < n; i++) {
        CHECK(!f[i].complete);
        CHECK_EQ(f[i].modules[1].packets, 0);
        CHECK_EQ(f[i].modules[0].packets, 128);
        CHECK_EQ(f[i].data[MG_MODULE_PIXELS], MG_WORD_MISSING);
    }
    flush_all(a, 2);
    CHECK_EQ(take_all(a, f, 8), 0);
    CHECK_EQ(mg_asm_next_frame(a, &f[0]), -1);
    mg_asm_free(a);
}

static void test_refusals(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.ifaces = 2, .reorder = 4});
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
    mg_asm_push(a, 0, make(1ull << 62, 1, 0, 0, 0), MG_PACKET_BYTES, 1); /* no detector counts this far */
    for (unsigned p = 0; p < 9; p++) /* good: evidence enough */
        mg_asm_push(a, 0, make(1, p, 0, 0, 0), MG_PACKET_BYTES, 1);
    /* legacy 8246-byte datagram: 6 bytes before the header */
    memmove(pkt + 6, make(1, 9, 0, 0, 9), MG_PACKET_BYTES);
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
    CHECK_EQ(s.packets, 10);
    mg_asm_free(a);
}

static void test_overrun_and_lossless(void)
{
    /* 40 buffers; an acquisition's first frame is MG_ASM_MARGIN frames into them, so 24 frames fit before
     * the collector has passed the margin */
    for (int lossless = 0; lossless < 2; lossless++) {
        mg_detector d;
        mg_assembler *a = new_asm(&d, (opts){.reorder = 2, .slots = 40, .lossless = lossless});
        for (uint64_t fn = 1; fn <= 24; fn++)
            send_frame(a, 0, 0, fn, 128, -1);
        mg_frame f0;
        CHECK_EQ(mg_asm_next_frame(a, &f0), 1); /* taken downstream, not given back */
        CHECK_EQ(f0.modules[0].frame_number, 1);
        for (uint64_t fn = 25; fn <= 40; fn++) /* into the margin's buffers, passed by now */
            send_frame(a, 0, 0, fn, 128, -1);
        mg_link_stats s;
        mg_asm_link_stats(a, 0, &s);
        CHECK_EQ(s.overrun, 0);
        if (!lossless) {
            send_frame(a, 0, 0, 41, 128, -1); /* frame 1's buffer is still downstream */
            mg_asm_link_stats(a, 0, &s);
            CHECK_EQ(s.overrun, 128);
        } else
            CHECK_EQ(mg_asm_push(a, 0, make(41, 0, 0, 0, 0), MG_PACKET_BYTES, 41 * MS), MG_ASM_RETRY);
        mg_asm_release(a, &f0);
        mg_frame f;
        while (mg_asm_next_frame(a, &f) == 1)
            mg_asm_release(a, &f);
        mg_asm_next_frame(a, &f); /* reaps the buffers */
        if (lossless)
            CHECK_EQ(mg_asm_push(a, 0, make(41, 0, 0, 0, 0), MG_PACKET_BYTES, 41 * MS), 0);
        else
            send_frame(a, 0, 0, 42, 128, -1); /* buffers free again */
        mg_asm_link_stats(a, 0, &s);
        CHECK_EQ(s.overrun, lossless ? 0 : 128);
        CHECK_EQ(s.packets, lossless ? 40 * 128 + 1 : 41 * 128);
        mg_asm_free(a);
    }
}

/* Downstream gives buffers back only every 100 frames: packets meanwhile are
 * overruns, but the stream goes on - frames are handed on (those lost whole
 * as missing images) and the link keeps taking packets once buffers are free. */
static void test_overrun_recovers(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.slots = 64});
    mg_frame held[64];
    int nh = 0, got = 0;
    for (uint64_t fn = 1; fn <= 400; fn++) {
        send_at(a, 0, 0, fn, 128, -1, fn * MS / 2);
        mg_frame f;
        while (nh < 64 && mg_asm_next_frame(a, &f) == 1) {
            held[nh++] = f;
            got++;
        }
        if (fn % 100 == 0) {
            for (int i = 0; i < nh; i++)
                mg_asm_release(a, &held[i]);
            nh = 0;
        }
    }
    for (int i = 0; i < nh; i++)
        mg_asm_release(a, &held[i]);
    mg_asm_flush(a, 0);
    mg_frame f;
    while (mg_asm_next_frame(a, &f) == 1) {
        CHECK_EQ(f.modules[0].frame_number, (uint64_t)got + 1);
        mg_asm_release(a, &f);
        got++;
    }
    CHECK_EQ(got, 400);
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    mg_asm_totals t;
    mg_asm_get_totals(a, &t);
    CHECK(s.overrun > 0 && s.packets >= 64 * 128);
    CHECK_EQ(s.packets + s.overrun, 400 * 128);
    CHECK_EQ(t.packets_missing, s.overrun);
    mg_asm_free(a);
}

/* The last frames came while every buffer was still downstream (lost,
 * counted as overruns): nobody took a packet of them, yet once the link is
 * silent for the frame timeout they close like any other, before the run
 * ends (a service run asked for so many frames must end). */
static void test_silent_after_overrun(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.slots = 64});
    mg_frame held[64], f;
    int nh = 0;
    for (uint64_t fn = 1; fn <= 100; fn++) {
        send_at(a, 0, 0, fn, 128, -1, fn * MS);
        while (nh < 64 && mg_asm_next_frame(a, &held[nh]) == 1)
            nh++;
    }
    int got = nh;
    for (int i = 0; i < nh; i++)
        mg_asm_release(a, &held[i]);
    mg_asm_tick(a, 0, 400 * MS); /* silent for 300 ms */
    while (mg_asm_next_frame(a, &f) == 1) {
        mg_asm_release(a, &f);
        got++;
    }
    CHECK_EQ(got, 100);
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    CHECK(s.overrun > 0);
    mg_asm_flush(a, 0);
    mg_asm_free(a);
}

static void test_max_frames(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.reorder = 4, .max_frames = 2});
    for (uint64_t fn = 1; fn <= 3; fn++)
        send_frame(a, 0, 0, fn, 128, -1);
    mg_frame f;
    CHECK_EQ(mg_asm_next_frame(a, &f), 1);
    mg_asm_release(a, &f);
    CHECK_EQ(mg_asm_next_frame(a, &f), 1);
    mg_asm_release(a, &f);
    CHECK_EQ(mg_asm_next_frame(a, &f), -1);
    send_frame(a, 0, 0, 4, 128, -1);
    mg_asm_flush(a, 0);
    mg_link_stats s;
    mg_asm_link_stats(a, 0, &s);
    mg_asm_totals t;
    mg_asm_get_totals(a, &t);
    /* frame 3 was taken before the end was known, frame 4 after: both are after the end */
    CHECK_EQ(s.after_end + t.after_end, 256);
    CHECK_EQ(s.packets - t.after_end, 256);
    mg_asm_free(a);
}

static void test_timeout(void)
{
    mg_detector d;
    mg_assembler *a = new_asm(&d, (opts){.reorder = 16});
    for (int p = 0; p < 100; p++)
        mg_asm_push(a, 0, make(1, (unsigned)p, 0, 0, 0), MG_PACKET_BYTES, 1000);
    mg_frame f;
    mg_asm_tick(a, 0, 1000 + 50 * MS); /* 50 ms: still waiting */
    CHECK_EQ(mg_asm_next_frame(a, &f), 0);
    mg_asm_tick(a, 0, 1000 + 150 * MS); /* 150 ms of silence: the frame closes partial */
    CHECK_EQ(mg_asm_next_frame(a, &f), 1);
    CHECK(!f.complete);
    CHECK_EQ(f.modules[0].packets, 100);
    mg_asm_free(a);
}

static void test_by_reference(void)
{
    mg_detector d;
    mg_detector_simple(&d, "t", 1, 2, "127.0.0.1", 50001, NULL, NULL);
    mg_asm_config c = {.det = &d, .reorder = 4, .slots = 64, .check_position = 1, .numa_node = -1,
                       .by_reference = 1};
    mg_assembler *a = mg_asm_new(&c, NULL);
    static uint8_t store[128][MG_PACKET_BYTES];
    for (int i = 0; i < 2; i++)
        for (int p = 0; p < 64; p++) {
            if (i == 1 && p == 5)
                continue;
            memcpy(store[i * 64 + p], make(100, (unsigned)p, (unsigned)i, 0, (uint16_t)(i * 64 + p)), MG_PACKET_BYTES);
            mg_asm_push_offline(a, i, store[i * 64 + p], MG_PACKET_BYTES, MS, 7); /* frame 107 */
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
    mg_asm_config c = {.det = &d, .reorder = 4, .slots = 64, .check_position = 1, .numa_node = -1,
                       .module_node = nodes};
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
    mg_asm_config c = {.det = &d, .reorder = 16, .slots = 30, .numa_node = -1};
    mg_error e;
    CHECK(mg_asm_new(&c, &e) == NULL);
    CHECK(strstr(e.message, "too few") != NULL);
    c.slots = 64;
    c.readnrows = 20;
    CHECK(mg_asm_new(&c, &e) == NULL);
    CHECK(strstr(e.message, "readnrows") != NULL);
}

int main(void)
{
    RUN(test_in_order);
    RUN(test_reverse_duplicates_two_interfaces);
    RUN(test_partial_and_late);
    RUN(test_stray_ahead);
    RUN(test_stray_before_start);
    RUN(test_lossy_start);
    RUN(test_forged_walk);
    RUN(test_random_datagrams);
    RUN(test_module_loses_first_frame);
    RUN(test_pairing_by_arrival);
    RUN(test_pairing_by_bunch_id);
    RUN(test_lagging_link);
    RUN(test_lag_beyond_buffers);
    RUN(test_counter_reset_and_jump);
    RUN(test_pause_then_restart);
    RUN(test_pause_mid_frame);
    RUN(test_pause_with_a_link_read_late);
    RUN(test_delayed_packets_in_a_pause);
    RUN(test_one_module_restarts);
    RUN(test_gap_keeps_places);
    RUN(test_partial_readout);
    RUN(test_one_module_silent);
    RUN(test_refusals);
    RUN(test_overrun_and_lossless);
    RUN(test_overrun_recovers);
    RUN(test_silent_after_overrun);
    RUN(test_max_frames);
    RUN(test_timeout);
    RUN(test_by_reference);
    RUN(test_module_pools);
    RUN(test_bad_config);
    return CHECK_DONE();
}
