/* bench_target.h - where the load goes, read from DIR/lab.json: for each API the client
 * credentials at KME A (the master side) and KME B (the slave side). With a baseline URL every
 * endpoint points at that URL instead, with the SAE certificates (nginx has no TLS-PSK), so the
 * same generator sends the same requests to a server that only returns fixed bodies. */
#ifndef BENCH_TARGET_H
#define BENCH_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qkdclient.h"

typedef struct {
    const char *url;  /* base URL, no trailing slash */
    const char *ca;   /* CA file (NULL: pure PSK) */
    const char *cert; /* mTLS client certificate and key */
    const char *key;
    const char *psk_identity; /* TLS-PSK (SKIP) */
    const uint8_t *psk;       /* lives in the manifest's secure memory */
    size_t psk_len;
} bench_endpoint;

typedef struct {
    qkc_lab lab;
    bool baseline;
    const char *kme_id[2]; /* [0] = KME A (master), [1] = KME B (slave) */
    const char *sae_id[2]; /* first SAE of each KME */
    bench_endpoint etsi[2];
    bench_endpoint skip[2]; /* url NULL when the lab runs without SKIP */
} bench_target;

/* Load DIR/lab.json and resolve the endpoints. kme_a/kme_b NULL: the first link's ends.
 * baseline_url non-NULL: point every endpoint there. 0, or -1 with a message on stderr. */
int bench_target_load(bench_target *t, const char *lab_dir, const char *kme_a, const char *kme_b,
                      const char *baseline_url);
void bench_target_free(bench_target *t);

#endif
