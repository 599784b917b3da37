/* test_sim_sched.c - rate -> block schedule arithmetic, faults and block ID starts. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <string.h>

#include "sim_blockid.h"
#include "sim_fault.h"
#include "sim_sched.h"

static void test_rate_to_blocks(void)
{
    qk_sched s;
    qk_sched_init(&s, 1000, 0.0); /* 8000 bits per block */
    int blocks = 0;
    /* 80 000 bit/s for 10 s in 10 ms steps: 800 000 bits = 100 blocks. */
    for (int t = 10; t <= 10000; t += 10) {
        qk_sched_advance(&s, 80000.0, (double)t);
        while (qk_sched_take(&s))
            blocks++;
    }
    CU_ASSERT_EQUAL(blocks, 100);
    CU_ASSERT(s.lost_bits == 0.0);
    CU_ASSERT(s.credit_bits < s.block_bits);
}

static void test_wait_and_zero_rate(void)
{
    qk_sched s;
    qk_sched_init(&s, 1000, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(qk_sched_wait_ms(&s, 8000.0, 5000.0), 1000.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(qk_sched_wait_ms(&s, 8000.0, 200.0), 200.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(qk_sched_wait_ms(&s, 0.0, 200.0), 200.0, 1e-9);
    qk_sched_advance(&s, 0.0, 100000.0); /* a link that is down earns nothing */
    CU_ASSERT_EQUAL(qk_sched_take(&s), 0);
    qk_sched_advance(&s, 8000.0, 100500.0);
    CU_ASSERT_DOUBLE_EQUAL(s.credit_bits, 4000.0, 1e-6);
    qk_sched_advance(&s, 8000.0, 100000.0); /* time going backwards earns nothing */
    CU_ASSERT_DOUBLE_EQUAL(s.credit_bits, 4000.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(qk_sched_wait_ms(&s, 8000.0, 5000.0), 500.0, 1e-6);
}

static void test_backlog_cap(void)
{
    qk_sched s;
    qk_sched_init(&s, 1000, 0.0);
    qk_sched_advance(&s, 8000.0, 60000.0); /* 60 blocks earned while delivery stalled */
    int blocks = 0;
    while (qk_sched_take(&s))
        blocks++;
    CU_ASSERT_EQUAL(blocks, QK_SCHED_MAX_BACKLOG);
    CU_ASSERT_DOUBLE_EQUAL(s.lost_bits, (60 - QK_SCHED_MAX_BACKLOG) * 8000.0, 1e-6);
}

static void test_faults(void)
{
    qk_faults f;
    qk_faults_clear(&f);
    qk_err err = {0};
    CU_ASSERT_EQUAL(qk_fault_apply(&f, "down", NULL, &err), 0);
    CU_ASSERT(f.down);
    CU_ASSERT_EQUAL(qk_fault_apply(&f, "eve", "0.25", &err), 0);
    CU_ASSERT_DOUBLE_EQUAL(f.eve_fraction, 0.25, 1e-12);
    CU_ASSERT_EQUAL(qk_fault_apply(&f, "corrupt", "b", &err), 0);
    CU_ASSERT_EQUAL(f.corrupt, QK_END_B);
    CU_ASSERT_EQUAL(qk_fault_apply(&f, "drop", "a", &err), 0);
    CU_ASSERT_EQUAL(f.drop, QK_END_A);
    CU_ASSERT_EQUAL(qk_fault_apply(&f, "loss", "3.5", &err), 0);
    CU_ASSERT_EQUAL(qk_fault_apply(&f, "delay", "250", &err), 0);
    char j[256];
    CU_ASSERT(qk_faults_json(&f, j, sizeof j) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"drop\":\"a\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"corrupt\":\"b\""));
    /* Refusals leave the faults unchanged. */
    qk_faults before = f;
    CU_ASSERT_NOT_EQUAL(qk_fault_apply(&f, "eve", "1.5", &err), 0);
    CU_ASSERT_NOT_EQUAL(qk_fault_apply(&f, "eve", NULL, &err), 0);
    CU_ASSERT_NOT_EQUAL(qk_fault_apply(&f, "drop", "c", &err), 0);
    CU_ASSERT_NOT_EQUAL(qk_fault_apply(&f, "loss", "-1", &err), 0);
    CU_ASSERT_NOT_EQUAL(qk_fault_apply(&f, "delay", "999999", &err), 0);
    CU_ASSERT_NOT_EQUAL(qk_fault_apply(&f, "up", "x", &err), 0);
    CU_ASSERT_NOT_EQUAL(qk_fault_apply(&f, "melt", NULL, &err), 0);
    CU_ASSERT_EQUAL(memcmp(&before, &f, sizeof f), 0);
    CU_ASSERT_EQUAL(qk_fault_apply(&f, "up", NULL, &err), 0);
    CU_ASSERT(!f.down);
    CU_ASSERT_EQUAL(qk_fault_apply(&f, "clear", NULL, &err), 0);
    CU_ASSERT_EQUAL(f.drop, QK_END_NONE);
    CU_ASSERT_EQUAL(f.eve_fraction, 0.0);
}

static void test_blockid_start(void)
{
    CU_ASSERT_EQUAL(qk_blockid_start(0, 1000), 1000u);
    CU_ASSERT_EQUAL(qk_blockid_start(5000, 1000), 5001u); /* the state file wins */
    CU_ASSERT_EQUAL(qk_blockid_start(999, 1000), 1000u);  /* the clock wins */
}

int suite_sim_sched(void)
{
    CU_pSuite s = CU_add_suite("sim_sched", NULL, NULL);
    if (!s || !CU_add_test(s, "rate to blocks", test_rate_to_blocks) ||
        !CU_add_test(s, "wait and zero rate", test_wait_and_zero_rate) ||
        !CU_add_test(s, "backlog cap", test_backlog_cap) ||
        !CU_add_test(s, "faults", test_faults) ||
        !CU_add_test(s, "block ID start", test_blockid_start))
        return -1;
    return 0;
}
