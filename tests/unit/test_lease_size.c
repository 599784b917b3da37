/* test_lease_size.c - the carve meter and the lease sizes it gives (kms/lease_size.h). */
#include <CUnit/CUnit.h>
#include <stdint.h>

#include "lease_size.h"
#include "store.h"

/* One-second windows: the rate is the bytes of the current and the previous window over the
 * time they span. */
static void test_meter_windows(void)
{
    qk_carve_meter m = {0, 0, 0};
    CU_ASSERT_EQUAL(qk_carve_meter_rate(&m, 5000.0), 0); /* nothing counted */
    qk_carve_meter_add(&m, 1000.0, 1000);
    CU_ASSERT_EQUAL(qk_carve_meter_rate(&m, 1000.0), 1000); /* over one second at least */
    CU_ASSERT_EQUAL(qk_carve_meter_rate(&m, 1500.0), 666);  /* 1000 bytes over 1.5 s */
    qk_carve_meter_add(&m, 1900.0, 900);
    CU_ASSERT_EQUAL(qk_carve_meter_rate(&m, 1900.0), 1000); /* 1900 bytes over 1.9 s */
    /* the window rolls at 2000: 1900 bytes are the previous window's, over 1.1 s */
    CU_ASSERT_EQUAL(qk_carve_meter_rate(&m, 2100.0), 1727);
    qk_carve_meter_add(&m, 2500.0, 500);
    CU_ASSERT_EQUAL(qk_carve_meter_rate(&m, 2500.0), 1600); /* (1900 + 500) over 1.5 s */
    /* at 3000 the window of 1900 bytes is two windows back: only the 500 count */
    CU_ASSERT_EQUAL(qk_carve_meter_rate(&m, 3000.0), 500);
    /* idle for two windows: nothing */
    CU_ASSERT_EQUAL(qk_carve_meter_rate(&m, 4000.0), 0);
    CU_ASSERT_EQUAL(qk_carve_meter_rate(&m, 60000.0), 0);
    /* the reading changed nothing: counting after a long pause starts afresh */
    qk_carve_meter_add(&m, 60000.0, 300);
    CU_ASSERT_EQUAL(qk_carve_meter_rate(&m, 60000.0), 300);
}

/* A burst reads as at most its bytes per second; a steady load as itself; odd inputs stay
 * bounded. */
static void test_meter_burst_and_bounds(void)
{
    qk_carve_meter m = {0, 0, 0};
    qk_carve_meter_add(&m, 100.0, 10u << 20); /* 10 MiB within a millisecond */
    CU_ASSERT_EQUAL(qk_carve_meter_rate(&m, 101.0), (uint64_t)(10.0 * 1048576 * 1000 / 1001));
    qk_carve_meter s = {0, 0, 0};
    for (int t = 0; t < 5000; t += 10) /* 8 MB/s for 5 s, in 10 ms steps */
        qk_carve_meter_add(&s, 1.0 + t, 80000);
    uint64_t r = qk_carve_meter_rate(&s, 5001.0);
    CU_ASSERT(r >= 7900000 && r <= 8100000);
    /* a reading older than the window (a thread that read the clock before another counted)
     * rolls nothing back: at most the counted bytes over one second */
    CU_ASSERT_EQUAL(qk_carve_meter_rate(&s, 10.0), 16000000);
    qk_carve_meter_add(&s, 10.0, 1);
    CU_ASSERT_EQUAL(s.cur, 8000001);
    /* no time (0) counts nothing; a saturated count stays capped */
    qk_carve_meter z = {0, 0, 0};
    qk_carve_meter_add(&z, 0.0, 1000);
    CU_ASSERT_EQUAL(qk_carve_meter_rate(&z, 1.0), 0);
    qk_carve_meter_add(&z, 1.0, UINT64_MAX);
    qk_carve_meter_add(&z, 2.0, UINT64_MAX);
    CU_ASSERT_EQUAL(z.cur, UINT64_MAX);
    CU_ASSERT_EQUAL(qk_carve_meter_rate(&z, 2.0), (uint64_t)QK_BLOCK_MAX_BYTES * 1000);
}

/* The ask: lease_bytes, or demand_ms worth of the rate when more, at most a block. The low
 * mark: lease_low_water, or half that worth when more; 0 stays 0 (no leasing ahead). */
static void test_sizes(void)
{
    CU_ASSERT_EQUAL(qk_lease_ask_bytes(262144, 0, 500), 262144);
    CU_ASSERT_EQUAL(qk_lease_ask_bytes(262144, 64000, 500), 262144); /* small keys: unchanged */
    CU_ASSERT_EQUAL(qk_lease_ask_bytes(262144, 8000000, 500), 4000000);
    CU_ASSERT_EQUAL(qk_lease_ask_bytes(262144, 8000000, 0), 262144); /* demand off */
    CU_ASSERT_EQUAL(qk_lease_ask_bytes(262144, 100000000, 500), QK_BLOCK_MAX_BYTES);
    CU_ASSERT_EQUAL(qk_lease_ask_bytes(1024, 3, 333), 1024);
    CU_ASSERT_EQUAL(qk_lease_ask_bytes(1024, 4001, 1000), 4001);
    CU_ASSERT_EQUAL(qk_lease_ask_bytes(1024, (uint64_t)QK_BLOCK_MAX_BYTES * 1000, 10000),
                    QK_BLOCK_MAX_BYTES);
    CU_ASSERT_EQUAL(qk_lease_low_mark(65536, 0, 500), 65536);
    CU_ASSERT_EQUAL(qk_lease_low_mark(65536, 8000000, 500), 2000000);
    CU_ASSERT_EQUAL(qk_lease_low_mark(65536, 8000000, 0), 65536);
    CU_ASSERT_EQUAL(qk_lease_low_mark(0, 8000000, 500), 0); /* leasing ahead stays off */
    CU_ASSERT_EQUAL(qk_lease_low_mark(65536, 100000000, 10000), QK_BLOCK_MAX_BYTES);
}

int suite_lease_size(void)
{
    CU_pSuite s = CU_add_suite("lease_size", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "meter: one-second windows", test_meter_windows) ||
        !CU_add_test(s, "meter: bursts and bounds", test_meter_burst_and_bounds) ||
        !CU_add_test(s, "ask and low mark", test_sizes))
        return -1;
    return 0;
}
