/* lease_size.c - lease sizes from the demand a link sees (lease_size.h). */
#include "lease_size.h"

#include "store.h"

/* The meter as it would read at now_ms: windows that ended since are rolled over. */
static qk_carve_meter rolled(const qk_carve_meter *m, double now_ms)
{
    qk_carve_meter r = *m;
    if (r.start_ms <= 0.0) /* nothing counted yet: an empty window from now */
        return (qk_carve_meter){now_ms, 0, 0};
    if (now_ms < r.start_ms) /* read before another thread counted: nothing to roll */
        return r;
    double gone = now_ms - r.start_ms;
    if (gone >= 2 * QK_CARVE_WINDOW_MS) { /* the previous window would be idle too */
        r.prev = 0;
        r.cur = 0;
        r.start_ms = now_ms;
    } else if (gone >= QK_CARVE_WINDOW_MS) {
        r.prev = r.cur;
        r.cur = 0;
        r.start_ms += QK_CARVE_WINDOW_MS;
    }
    return r;
}

void qk_carve_meter_add(qk_carve_meter *m, double now_ms, uint64_t bytes)
{
    if (now_ms <= 0.0)
        return;
    *m = rolled(m, now_ms);
    m->cur = UINT64_MAX - m->cur < bytes ? UINT64_MAX : m->cur + bytes;
}

uint64_t qk_carve_meter_rate(const qk_carve_meter *m, double now_ms)
{
    qk_carve_meter r = rolled(m, now_ms);
    double span = QK_CARVE_WINDOW_MS + (now_ms > r.start_ms ? now_ms - r.start_ms : 0.0);
    double rate = ((double)r.prev + (double)r.cur) * 1000.0 / span;
    return rate >= (double)QK_BLOCK_MAX_BYTES * 1000.0 ? (uint64_t)QK_BLOCK_MAX_BYTES * 1000
                                                       : (uint64_t)rate;
}

/* rate * ms / per_ms, at most a block's size (rate is at most 1000 blocks per second and ms at
 * most ~2^32: no overflow below 2^64). */
static uint64_t worth(uint64_t rate, uint32_t ms, uint32_t per_ms)
{
    uint64_t v = rate / per_ms * ms + rate % per_ms * ms / per_ms;
    return v > QK_BLOCK_MAX_BYTES ? QK_BLOCK_MAX_BYTES : v;
}

/* The larger of floor and d, at most a block's size. */
static uint64_t at_least(uint64_t floor, uint64_t d)
{
    uint64_t v = d > floor ? d : floor;
    return v > QK_BLOCK_MAX_BYTES ? QK_BLOCK_MAX_BYTES : v;
}

uint64_t qk_lease_ask_bytes(uint32_t lease_bytes, uint64_t rate, uint32_t demand_ms)
{
    return at_least(lease_bytes, worth(rate, demand_ms, 1000));
}

uint64_t qk_lease_low_mark(uint32_t low_water, uint64_t rate, uint32_t demand_ms)
{
    return low_water == 0 ? 0 : at_least(low_water, worth(rate, demand_ms, 2000));
}
