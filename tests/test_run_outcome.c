/* test_run_outcome.c - the verdict every run ends with: the exit status and
 * the one-line reason mg_run_outcome gives for each kind of summary (clean,
 * packets lost within and beyond --max-loss, ended early, refused or stray
 * datagrams, nothing received, an error, and frames received but not
 * written), and that a loss is never hidden behind a milder verdict. */
#include <string.h>

#include "check.h"
#include "morgul/run.h"

static mg_run_summary clean(void)
{
    static mg_run_summary s; /* large: not on the stack */
    memset(&s, 0, sizeof s);
    s.started = 1;
    s.nmodules = 2;
    s.expected_packets = 128;
    s.frames.images = s.frames.frames_complete = 100;
    s.frames_written = 100;
    s.packets_expected = 100 * 2 * 128;
    s.stopped_by = MG_END_IDLE;
    return s;
}

static int outcome(const mg_run_summary *s, int rc, double max_loss, char *why)
{
    return mg_run_outcome(s, rc, max_loss, why, 512);
}

static void test_clean_run(void)
{
    char why[512];
    mg_run_summary s = clean();
    CHECK_EQ(outcome(&s, 0, 0, why), MG_EXIT_OK);
    CHECK(strstr(why, "complete: 100 frames") != NULL);
}

static void test_error_comes_first(void)
{
    char why[512];
    mg_run_summary s = clean();
    s.packets_lost = 5000;
    CHECK_EQ(outcome(&s, MG_EIO, 0, why), MG_EXIT_FAILED);
    CHECK(strstr(why, "FAILED") != NULL);
}

static void test_packets_lost(void)
{
    char why[512];
    mg_run_summary s = clean();
    s.packets_lost = 10;
    s.frames.frames_partial = 1;
    CHECK_EQ(outcome(&s, 0, 0, why), MG_EXIT_LOSS);
    CHECK(strstr(why, "DATA LOST: 10 of 25600") != NULL);
    CHECK_EQ(outcome(&s, 0, 0.01, why), MG_EXIT_OK); /* 0.04 % is within 1 % */
    CHECK(strstr(why, "within --max-loss") != NULL);
}

static void test_refused_datagrams(void)
{
    char why[512];
    mg_run_summary s = clean();
    s.total.stray = 3;
    CHECK_EQ(outcome(&s, 0, 0, why), MG_EXIT_REFUSED);
    CHECK(strstr(why, "3 datagrams were refused or stray") != NULL);
    s.packets_lost = 1000; /* a loss outranks the refusal */
    CHECK_EQ(outcome(&s, 0, 0, why), MG_EXIT_LOSS);
}

static void test_ended_early(void)
{
    char why[512];
    mg_run_summary s = clean();
    s.max_frames = 150;
    s.frames_missing_at_end = 50;
    s.packets_lost = 50 * 2 * 128;
    s.packets_expected += s.packets_lost;
    CHECK_EQ(outcome(&s, 0, 0, why), MG_EXIT_LOSS);
    CHECK(strstr(why, "ENDED EARLY: 100 of the 150") != NULL);
}

static void test_nothing_received(void)
{
    char why[512];
    mg_run_summary s = clean();
    s.frames.images = s.frames.frames_complete = 0;
    s.frames_written = 0;
    s.packets_expected = 0;
    CHECK_EQ(outcome(&s, 0, 0, why), MG_EXIT_LOSS);
    CHECK(strstr(why, "NO DATA") != NULL);
}

/* every frame arrived complete, but fewer reached the files: a loss, even
 * with stray datagrams that would otherwise give the milder status 4 */
static void test_frames_not_written(void)
{
    char why[512];
    mg_run_summary s = clean();
    s.frames_written = 95;
    s.frames_unwritten = 5;
    s.total.stray = 2000;
    CHECK_EQ(outcome(&s, 0, 0.5, why), MG_EXIT_LOSS);
    CHECK(strstr(why, "5 of the 100 frames received were not written") != NULL);
}

int main(void)
{
    RUN(test_clean_run);
    RUN(test_error_comes_first);
    RUN(test_packets_lost);
    RUN(test_refused_datagrams);
    RUN(test_ended_early);
    RUN(test_nothing_received);
    RUN(test_frames_not_written);
    return CHECK_DONE();
}
