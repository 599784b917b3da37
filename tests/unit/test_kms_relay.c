/* test_kms_relay.c - the relay data path (kms/kms_relay.c, docs/adr/0004-key-relay.md) on a
 * linked pair of real cores with their peer APIs on TLS listeners (kms_fixture.h): a multicast
 * to a slave at this KME and one at the peer relays the same key IDs and bytes to both (each
 * fetched once, the hop consuming L + 32 bytes of the link's key); a hop altered in flight is
 * caught by its MAC (the request fails with the reason "mac", nothing is delivered anywhere,
 * everything carved is burned); the keys at the slaves' KME are not fetchable before the master
 * KME's commit arrives, and a fetch that waits for them is woken by it; the relay-burn and
 * relay-commit handlers refuse a path that does not name the caller. */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kms_fixture.h"
#include "http_util.h"
#include "kms_relay.h"

static kf_pair P;
enum { BLOCK = QK_BLOCK_VKEY_LEN + 16384 };
static uint8_t blk[BLOCK];

/* A proxy in front of B's peer API: passes every call on, but alters the ciphertext of a relay
 * (corrupt) or keeps a relay-commit to itself (hold: answered 503, its body saved). */
typedef struct {
    qk_http_handler super;
    qk_http_handler *real;
    bool corrupt, hold;
    char *commit_body;
    atomic_int relays;
} proxy;

static void proxy_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    proxy *x = (proxy *)self;
    if (strcmp(req->path, "/peer/v1/relay-commit") == 0 && x->hold) {
        free(x->commit_body);
        x->commit_body = strdup(req->body);
        qk_http_reply_json(rep, 503, "{\"message\":\"held by the test\"}");
        return;
    }
    if (strcmp(req->path, "/peer/v1/relay") == 0) {
        atomic_fetch_add(&x->relays, 1);
        if (x->corrupt) {
            char *body = strdup(req->body);
            char *ct = body ? strstr(body, "\"ct\":\"") : NULL;
            CU_ASSERT_FATAL(ct != NULL);
            ct += 6;
            *ct = *ct == 'A' ? 'B' : 'A'; /* still base64: only the tag can tell */
            qk_http_request r2 = *req;
            r2.body = body;
            x->real->on_req(x->real, &r2, rep);
            free(body);
            return;
        }
    }
    x->real->on_req(x->real, req, rep);
}

/* The pair with one confirmed block at both ends; A knows SAE_B1 lives at KF_PEER. */
static void pair_open(proxy *x)
{
    static const char *const saes_a[] = {"SAE_A1", "SAE_A2", NULL};
    static const char *const saes_b[] = {"SAE_B1", NULL};
    CU_ASSERT_FATAL(kf_pair_open(&P, saes_a, saes_b) == 0);
    qk_sae_cfg *s = &P.a.cfg->saes[P.a.cfg->nsaes++];
    snprintf(s->id, sizeof s->id, "SAE_B1");
    snprintf(s->kme, sizeof s->kme, KF_PEER);
    /* multicast across KMEs needs the relay on (the fixture's default is off: no topology
     * thread); set after open, so no refresh thread polls the fake peer */
    P.a.cfg->relay.enabled = P.b.cfg->relay.enabled = true;
    randombytes_buf(blk, sizeof blk);
    CU_ASSERT_FATAL(sf_put_confirmed(qk_kms_store(P.a.kms), KF_LINK, 1, blk, sizeof blk) == 0);
    CU_ASSERT_FATAL(sf_put_confirmed(qk_kms_store(P.b.kms), KF_LINK, 1, blk, sizeof blk) == 0);
    memset(x, 0, sizeof *x);
    x->super.on_req = proxy_on_req;
    x->real = &P.hb.super;
    kf_pair_b_down(&P);
    CU_ASSERT_FATAL(kf_pair_b_fake(&P, &x->super) == 0);
}

static void pair_close(proxy *x)
{
    kf_pair_close(&P);
    free(x->commit_body);
    x->commit_body = NULL;
}

/* SAE_A1 asks for n keys of 256 bits for s1 and s2. */
static int multicast_to(const char *s1, const char *s2, size_t n, qk_key_batch *b, qk_err *err)
{
    const char *slaves[2] = {s1, s2};
    qk_key_request req = {.requester = "SAE_A1",
                          .target_kme = NULL,
                          .slaves = slaves,
                          .nslaves = 2,
                          .number = n,
                          .size_bits = 256};
    qk_err_clear(err);
    return qk_kms_reserve(P.a.kms, &req, b, err);
}

/* ... for SAE_A2 (here) and SAE_B1 (at the peer). */
static int multicast(size_t n, qk_key_batch *b, qk_err *err)
{
    return multicast_to("SAE_A2", "SAE_B1", n, b, err);
}

/* slave at k fetches the keys of m: 0 when they come back with the same bytes. */
static int fetch(qk_kms *k, const char *slave, const qk_key_batch *m)
{
    const char *ids[8];
    for (size_t i = 0; i < m->n && i < 8; i++)
        ids[i] = m->ids[i];
    qk_key_batch got;
    qk_err err = {0, ""};
    int rc = qk_kms_fetch(k, slave, "SAE_A1", ids, m->n, &got, &err);
    for (size_t i = 0; rc == 0 && i < m->n; i++)
        if (strcmp(got.ids[i], m->ids[i]) != 0 || got.lens[i] != m->lens[i] ||
            memcmp(got.keys[i], m->keys[i], m->lens[i]) != 0)
            rc = -1;
    if (rc == 0)
        qk_key_batch_free(&got);
    return rc;
}

static uint64_t consumed_a(void)
{
    qk_pool_status st;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_kms_pool_status(P.a.kms, KF_PEER, &st, &err), 0);
    return st.bytes_available;
}

static void test_multicast_here_and_there(void)
{
    proxy x;
    pair_open(&x);
    qk_key_batch b;
    qk_err err;
    uint64_t before = consumed_a();
    int rc = multicast(2, &b, &err);
    if (rc != 0)
        fprintf(stderr, "\n  multicast: %s (%s)\n", err.msg, b.relay_why);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(b.n, 2);
    CU_ASSERT_EQUAL(atomic_load(&x.relays), 1);
    /* the hop took 2 x 32 + 32 bytes of the link's key (and A leased ahead of it) */
    CU_ASSERT(before - consumed_a() >= 96);
    CU_ASSERT_EQUAL(fetch(P.b.kms, "SAE_A2", &b), QK_EUNAUTH); /* not a slave there */
    CU_ASSERT_EQUAL(fetch(P.a.kms, "SAE_A2", &b), 0);
    CU_ASSERT_EQUAL(fetch(P.b.kms, "SAE_B1", &b), 0);
    CU_ASSERT_EQUAL(fetch(P.b.kms, "SAE_B1", &b), QK_ENOTFOUND); /* once */
    CU_ASSERT_EQUAL(fetch(P.a.kms, "SAE_A2", &b), QK_ENOTFOUND);
    qk_key_batch_free(&b);
    pair_close(&x);
}

static void test_corrupted_hop(void)
{
    proxy x;
    pair_open(&x);
    x.corrupt = true;
    qk_key_batch b;
    qk_err err;
    CU_ASSERT_EQUAL(multicast(1, &b, &err), QK_EPEER);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.relay_why, "mac at hop 1"));
    CU_ASSERT_PTR_NULL(b.material);
    /* no pending request left at B, nothing at A for SAE_A2 (burned with the rest) */
    uint64_t held = 9;
    CU_ASSERT_EQUAL(qk_kms_stored_count(P.b.kms, "SAE_A1", "SAE_B1", &held, &err), 0);
    CU_ASSERT_EQUAL(held, 0);
    CU_ASSERT_EQUAL(qk_kms_stored_count(P.a.kms, "SAE_A1", "SAE_A2", &held, &err), 0);
    CU_ASSERT_EQUAL(held, 0);
    qk_key_batch_free(&b);
    /* the link itself is fine: the next relay goes through */
    x.corrupt = false;
    CU_ASSERT_EQUAL(multicast(1, &b, &err), 0);
    CU_ASSERT_EQUAL(fetch(P.b.kms, "SAE_B1", &b), 0);
    qk_key_batch_free(&b);
    pair_close(&x);
}

typedef struct {
    const qk_key_batch *b;
    int rc;
} fetcher;

static void *fetch_thread(void *arg)
{
    fetcher *f = arg;
    f->rc = fetch(P.b.kms, "SAE_B1", f->b);
    return NULL;
}

static void test_commit_wakes_fetch(void)
{
    proxy x;
    pair_open(&x);
    x.hold = true; /* B never hears the commit from A: the keys stay pending there */
    qk_key_batch b;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(multicast(1, &b, &err), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x.commit_body);
    CU_ASSERT_EQUAL(fetch(P.a.kms, "SAE_A2", &b), 0); /* committed here */
    uint64_t held = 9;
    CU_ASSERT_EQUAL(qk_kms_stored_count(P.b.kms, "SAE_A1", "SAE_B1", &held, &err), 0);
    CU_ASSERT_EQUAL(held, 0); /* pending: not the slave's yet */
    qk_relay_commit_msg m;
    CU_ASSERT_EQUAL_FATAL(qk_relay_commit_decode(x.commit_body, strlen(x.commit_body), &m, &err),
                          0);
    qk_link *from_a = qk_kms_link_by_peer(P.b.kms, KF_NODE);
    CU_ASSERT_FATAL(from_a != NULL);
    /* a commit whose path does not name the caller is refused */
    qk_relay_commit_msg bad = m;
    snprintf(bad.path[0], sizeof bad.path[0], "KME_X");
    CU_ASSERT_EQUAL(qk_kms_relay_commit_in(P.b.kms, from_a, &bad, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_kms_relay_burn_in(P.b.kms, from_a, &bad, &err), QK_EINVAL);
    /* a fetch waits for the commit, which wakes it */
    fetcher f = {&b, 99};
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, fetch_thread, &f) == 0);
    usleep(200 * 1000);
    CU_ASSERT_EQUAL(qk_kms_relay_commit_in(P.b.kms, from_a, &m, &err), 0);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(f.rc, 0);
    CU_ASSERT_EQUAL(qk_kms_relay_commit_in(P.b.kms, from_a, &m, &err), 0); /* idempotent */
    /* a burn after the commit: what was fetched stays fetched, nothing more comes out */
    CU_ASSERT_EQUAL(qk_kms_relay_burn_in(P.b.kms, from_a, &m, &err), 0);
    CU_ASSERT_EQUAL(fetch(P.b.kms, "SAE_B1", &b), QK_ENOTFOUND);
    qk_key_batch_free(&b);
    pair_close(&x);
}

/* A commit the slaves' KME did not take is sent again (the resender thread) until it is. */
static void test_commit_resent(void)
{
    proxy x;
    pair_open(&x);
    x.hold = true;
    qk_key_batch b;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(multicast(1, &b, &err), 0);
    qk_relay_unacked u[4];
    size_t n = 0;
    CU_ASSERT_EQUAL(qk_store_relay_unacked(qk_kms_store(P.a.kms), qk_now_s(), u, 4, &n, &err), 0);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_STRING_EQUAL(u[0].path, KF_NODE ">" KF_PEER);
    x.hold = false;
    uint64_t held = 0;
    for (int i = 0; i < 100 && held == 0; i++) {
        usleep(50 * 1000);
        CU_ASSERT_EQUAL(qk_kms_stored_count(P.b.kms, "SAE_A1", "SAE_B1", &held, &err), 0);
    }
    CU_ASSERT_EQUAL(held, 1);
    CU_ASSERT_EQUAL(fetch(P.b.kms, "SAE_B1", &b), 0);
    for (int i = 0; i < 100 && n > 0; i++) {
        usleep(20 * 1000);
        CU_ASSERT_EQUAL(qk_store_relay_unacked(qk_kms_store(P.a.kms), qk_now_s(), u, 4, &n, &err),
                        0);
    }
    CU_ASSERT_EQUAL(n, 0);
    qk_key_batch_free(&b);
    pair_close(&x);
}

/* The master KME crashed between recording a relay and deciding: after its restart the relay
 * is burned here and along its path (the slaves' KME burns its pending keys). */
static void test_undecided_after_restart(void)
{
    proxy x;
    pair_open(&x);
    qk_err err = {0, ""};
    uint64_t exp = qk_now_s() + 600;
    CU_ASSERT_EQUAL_FATAL(
        qk_store_relay_begin(qk_kms_store(P.a.kms), "RX", "SAE_A1", exp, KF_NODE ">" KF_PEER, &err),
        0);
    const char *sl[1] = {"SAE_B1"};
    qk_reservation r = {"RX", "x", "SAE_A1", sl, 1, exp};
    static const char ids[1][QK_KEY_ID_LEN + 1] = {"3c4d5e6f-7081-4293-a4b5-c6d7e8f90a1b"};
    uint32_t lens[1] = {32};
    uint8_t k[32];
    randombytes_buf(k, sizeof k);
    CU_ASSERT_EQUAL_FATAL(qk_store_relay_put(qk_kms_store(P.b.kms), &r, 1, ids, lens, k, &err), 0);
    CU_ASSERT_EQUAL_FATAL(kf_reopen(&P.a), 0); /* the restart */
    P.ha.kms = P.a.kms;
    int state = -1;
    for (int i = 0; i < 200 && state != 2; i++) {
        usleep(20 * 1000);
        CU_ASSERT_EQUAL(qk_store_request_state(qk_kms_store(P.b.kms), "RX", &state, &err), 0);
    }
    CU_ASSERT_EQUAL(state, 2); /* burned at the slaves' KME */
    CU_ASSERT_EQUAL(qk_store_request_state(qk_kms_store(P.a.kms), "RX", &state, &err), 0);
    CU_ASSERT_EQUAL(state, 2);
    CU_ASSERT_EQUAL(qk_store_relay_commit(qk_kms_store(P.b.kms), "RX", &err), QK_EINVAL);
    pair_close(&x);
}

/* max_key_count holds at the KME that holds the keys: the peer refuses a relay past it
 * ("limit"), this KME a request whose slave here is at it; nothing is stored anywhere then. */
static void test_quota(void)
{
    proxy x;
    pair_open(&x);
    qk_key_batch b, c;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(multicast(KF_MAX_COUNT, &b, &err), 0); /* not fetched: held */
    CU_ASSERT_EQUAL(multicast_to("SAE_B1", "SAE_A2", 1, &c, &err), QK_EPEER);
    CU_ASSERT_PTR_NOT_NULL(strstr(c.relay_why, "limit at hop 1"));
    CU_ASSERT_EQUAL(multicast(1, &c, &err), QK_EQUOTA); /* SAE_A2 here first */
    uint64_t held = 0;
    CU_ASSERT_EQUAL(qk_kms_stored_count(P.b.kms, "SAE_A1", "SAE_B1", &held, &err), 0);
    CU_ASSERT_EQUAL(held, KF_MAX_COUNT);
    CU_ASSERT_EQUAL(qk_kms_stored_count(P.a.kms, "SAE_A1", "SAE_A2", &held, &err), 0);
    CU_ASSERT_EQUAL(held, KF_MAX_COUNT);
    /* fetched: room again */
    CU_ASSERT_EQUAL(fetch(P.b.kms, "SAE_B1", &b), 0);
    CU_ASSERT_EQUAL(fetch(P.a.kms, "SAE_A2", &b), 0);
    CU_ASSERT_EQUAL(multicast(1, &c, &err), 0);
    qk_key_batch_free(&b);
    qk_key_batch_free(&c);
    pair_close(&x);
}

/* An SAE named like a KME could fetch hop keys (bound to KME IDs): the core refuses to open. */
static void test_sae_id_not_kme_id(void)
{
    static const char *const bad[] = {"SAE_A1", KF_NODE, NULL};
    static const char *const good[] = {"SAE_A1", NULL};
    kf_kme f;
    CU_ASSERT_EQUAL(kf_open(&f, bad), -1);
    CU_ASSERT_EQUAL_FATAL(kf_open(&f, good), 0);
    kf_close(&f);
}

int suite_kms_relay(void)
{
    CU_pSuite s = CU_add_suite("kms_relay", NULL, NULL);
    if (!s)
        return -1;
    return (CU_add_test(s, "multicast to this KME and the peer", test_multicast_here_and_there) &&
            CU_add_test(s, "a hop altered in flight: mac, nothing delivered", test_corrupted_hop) &&
            CU_add_test(s, "pending until the commit, which wakes a fetch",
                        test_commit_wakes_fetch) &&
            CU_add_test(s, "a commit not taken is sent again", test_commit_resent) &&
            CU_add_test(s, "max_key_count where the keys are held", test_quota) &&
            CU_add_test(s, "undecided after a restart: burned along the path",
                        test_undecided_after_restart) &&
            CU_add_test(s, "no SAE ID equal to a KME ID", test_sae_id_not_kme_id))
               ? 0
               : -1;
}
