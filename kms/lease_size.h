/* lease_size.h - how much a lease asks for, from the demand this end sees on a link
 * (docs/adr/0002-key-store.md, "Leases and notices", item "Lease sizes follow demand").
 *
 * A carve meter counts the bytes this end carved as master on a link in one-second windows;
 * its rate is the bytes of the current and the previous window over the time they span (one
 * second plus the part of the current window gone), so a burst shorter than a second reads as
 * at most its bytes per second, and a steady load as itself. A lease then asks for at least
 * lease_bytes, and for demand_ms worth of that rate when that is more; leasing ahead starts
 * below lease_low_water, or below half of that worth when that is more. Both are capped at a
 * block's size (the store grants at most half of a block's unleased room in any case). Pure
 * functions of their arguments (time is passed in): the caller locks and reads the clock. */
#ifndef QK_LEASE_SIZE_H
#define QK_LEASE_SIZE_H

#include <stdint.h>

#define QK_CARVE_WINDOW_MS 1000.0

typedef struct {
    double start_ms; /* start of the current window (0: nothing counted yet) */
    uint64_t cur;    /* bytes carved in the current window */
    uint64_t prev;   /* bytes carved in the window before it (0 if that one was idle) */
} qk_carve_meter;

/* Count `bytes` carved at now_ms (a monotonic clock in ms, e.g. qk_now_ms()). */
void qk_carve_meter_add(qk_carve_meter *m, double now_ms, uint64_t bytes);

/* Bytes per second carved over the last one to two seconds, as seen at now_ms. */
uint64_t qk_carve_meter_rate(const qk_carve_meter *m, double now_ms);

/* Bytes a lease asks for: max(lease_bytes, rate * demand_ms / 1000), at most a block's size.
 * demand_ms 0: lease_bytes. */
uint64_t qk_lease_ask_bytes(uint32_t lease_bytes, uint64_t rate, uint32_t demand_ms);

/* Granted, uncarved room below which this end leases ahead: max(low_water, rate * demand_ms /
 * 2000), at most a block's size. low_water 0 turns leasing ahead off (0 whatever the rate). */
uint64_t qk_lease_low_mark(uint32_t low_water, uint64_t rate, uint32_t demand_ms);

#endif
