/* store_lease.c - leases (ranges of a block agreed ahead of demand), carving from them, and
 * the notices that tell the peer which ranges became which keys. Placeholder: every call
 * returns QK_EINVAL "not yet" until implemented (helper S, issue 13). */
#include "store_int.h"

#include <stdlib.h>

int qk_store_lease_ask(qk_store *s, const char *link, qk_side side, uint32_t want, qk_lease *l,
                       qk_err *err)
{
    (void)s, (void)link, (void)side, (void)want, (void)l;
    return qk_err_set(err, QK_EINVAL, "store: lease_ask not yet");
}

int qk_store_lease_asks(qk_store *s, const char *link, qk_side side, qk_lease *out, size_t cap,
                        size_t *n, qk_err *err)
{
    (void)s, (void)link, (void)side, (void)out, (void)cap;
    if (n)
        *n = 0;
    return qk_err_set(err, QK_EINVAL, "store: lease_asks not yet");
}

int qk_store_lease_done(qk_store *s, const char *link, qk_side side, uint64_t block_id,
                        bool granted, qk_err *err)
{
    (void)s, (void)link, (void)side, (void)block_id, (void)granted;
    return qk_err_set(err, QK_EINVAL, "store: lease_done not yet");
}

int qk_store_lease_in(qk_store *s, const char *link, qk_side peer_side, const qk_lease *l,
                      qk_err *err)
{
    (void)s, (void)link, (void)peer_side, (void)l;
    return qk_err_set(err, QK_EINVAL, "store: lease_in not yet");
}

int qk_store_lease_room(qk_store *s, const char *link, qk_side side, uint64_t *bytes, qk_err *err)
{
    (void)s, (void)link, (void)side;
    if (bytes)
        *bytes = 0;
    return qk_err_set(err, QK_EINVAL, "store: lease_room not yet");
}

int qk_store_carve_owned(qk_store *s, const qk_reservation *r, qk_side side, size_t n, uint32_t len,
                         qk_key_ref *refs, uint8_t *material, qk_err *err)
{
    (void)s, (void)r, (void)side, (void)n, (void)len, (void)refs, (void)material;
    return qk_err_set(err, QK_EINVAL, "store: carve_owned not yet");
}

int qk_store_notices_pending(qk_store *s, const char *link, qk_notice *out, size_t cap, size_t *n,
                             qk_err *err)
{
    (void)s, (void)link, (void)out, (void)cap;
    if (n)
        *n = 0;
    return qk_err_set(err, QK_EINVAL, "store: notices_pending not yet");
}

void qk_notice_free(qk_notice *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].slaves);
        free(v[i].keys);
        v[i].slaves = NULL;
        v[i].keys = NULL;
        v[i].nslaves = v[i].nkeys = 0;
    }
}

int qk_store_notices_done(qk_store *s, const char *const *request_ids, size_t n, qk_err *err)
{
    (void)s, (void)request_ids, (void)n;
    return qk_err_set(err, QK_EINVAL, "store: notices_done not yet");
}

int qk_store_notice_in(qk_store *s, const char *link, qk_side peer_side, const qk_notice *v,
                       size_t n, int *results, qk_err *err)
{
    (void)s, (void)link, (void)peer_side, (void)v, (void)n, (void)results;
    return qk_err_set(err, QK_EINVAL, "store: notice_in not yet");
}

int qk_store_key_known(qk_store *s, const char *key_id, bool *known, qk_err *err)
{
    (void)s, (void)key_id;
    if (known)
        *known = false;
    return qk_err_set(err, QK_EINVAL, "store: key_known not yet");
}
