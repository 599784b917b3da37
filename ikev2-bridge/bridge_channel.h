/* bridge_channel.h - the channel between paired bridges. It carries key IDs and
 * acknowledgements only, never key material.
 *
 * Transport: HTTPS on the common TLS front end (responder) and HTTP client (initiator), with
 * mutual authentication by TLS-PSK (TLS 1.3, TLS_AES_256_GCM_SHA384) or certificates (mTLS,
 * the peer's certificate CN must be [peer] peer_name). TLS authenticates and protects every
 * message; on top, each message carries the sender's random epoch (per process start) and a
 * sequence number: a message whose (epoch, seq) is not newer than the last accepted one, or
 * from an epoch seen before, is refused (replay). Requests:
 *   POST /bridge/v1/offer      {"v":1,"type":"offer","bridge":N,"epoch":"hex","seq":n,"key_id":K}
 *     the responder fetches K from its KME, installs it, answers {"status":"installed",...}
 *   POST /bridge/v1/activate   same shape, type "activate" (two-phase drivers, WireGuard):
 *     both sides installed K; the responder puts K in use, answers {"status":"active",...}
 *   POST /bridge/v1/activated  same shape, type "activated": the initiator's gateway uses K;
 *     the responder drops every other key.
 * Refusals answer {"status":"error","message":...} with 4xx/5xx. */
#ifndef QKB_BRIDGE_CHANNEL_H
#define QKB_BRIDGE_CHANNEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bridge_config.h"
#include "gw_driver.h"
#include "http_envelope.h"

typedef struct {
    char type[16]; /* "offer" | "activate" | "activated" */
    char bridge[64];
    uint64_t epoch;
    uint64_t seq;
    char key_id[GW_KEY_ID_MAX];
} chan_msg;

/* JSON text (malloc'ed) or NULL. */
char *chan_msg_encode(const chan_msg *m);
/* Strict: every member present with its type, no unknown type, printable key ID. */
int chan_msg_decode(const char *body, size_t len, size_t max_len, chan_msg *out, qk_err *err);
/* Printable key IDs only (they become PPK_IDs, file entries and log fields). */
bool chan_key_id_ok(const char *id);

#define CHAN_EPOCHS 16
typedef struct {
    uint64_t epoch, last_seq;
    bool have;
    uint64_t old_epochs[CHAN_EPOCHS];
    unsigned n_old;
} chan_replay;

/* 0: accept (state updated); QK_EUNAUTH: replayed or out of order. */
int chan_replay_check(chan_replay *r, uint64_t epoch, uint64_t seq);

/* ---- responder ---------------------------------------------------------------------------- */

typedef struct {
    int (*offer)(void *ctx, const char *key_id, qk_err *err);
    int (*activated)(void *ctx, const char *key_id, qk_err *err);
    int (*activate)(void *ctx, const char *key_id, qk_err *err); /* NULL: path unknown (404) */
    void *ctx;
} chan_handlers;

/* The responder's request handler (common/http_envelope.h), exposed for the unit tests: the
 * caller must be the configured peer (403), POST /bridge/v1/offer, /activate (when the
 * activate callback is set) or /activated (404, 405), a
 * valid message of the path's type (400), newer than the last one (409); then the callback's
 * answer (200, 404 when the KME lacks the key, 503). Bodies past [limits] max_message are
 * refused by the envelope (413) before this. One message at a time. */
typedef struct {
    qk_http_handler super; /* first: the envelope calls on_req with &super */
    const qkb_config *cfg; /* borrowed */
    chan_handlers h;
    pthread_mutex_t mu; /* the replay state and one message at a time */
    chan_replay replay;
} chan_handler;
/* 0, or QK_EIO when the mutex cannot be created. */
int chan_handler_configure(chan_handler *ch, const qkb_config *cfg, const chan_handlers *h);
void chan_handler_release(chan_handler *ch);

typedef struct chan_server chan_server;
int chan_server_start(const qkb_config *cfg, const chan_handlers *h, chan_server **out,
                      qk_err *err);
uint16_t chan_server_port(const chan_server *s);
void chan_server_stop(chan_server *s);

/* ---- initiator ---------------------------------------------------------------------------- */

typedef struct chan_client chan_client;
int chan_client_new(const qkb_config *cfg, chan_client **out, qk_err *err);
void chan_client_free(chan_client *c);
/* Send one message; transport failures are retried [peer] retries times. Returns 0 when the
 * responder acknowledged, QK_EPEER with the responder's message when it refused, or the
 * transport error. */
int chan_send(chan_client *c, const char *type, const char *key_id, qk_err *err);

#endif
