/* bench_parse.h - minimal, bounded parsing of the answers the load generator checks: an ETSI
 * 014 key container and a SKIP key. Key bytes go into caller-owned (secure) buffers; the
 * parsed JSON's strings are wiped before it is freed. Nothing here logs. */
#ifndef BENCH_PARSE_H
#define BENCH_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_ID_MAX 64 /* longest key ID accepted (a UUID is 36, a SKIP keyId 32) */

typedef char bench_key_id[BENCH_ID_MAX + 1];

/* {"keys":[{"key_ID":"..","key":"base64"},..]} holding exactly `want` keys of klen bytes:
 * IDs into ids[0..want), bytes into keys (want * klen). 0, or -1 when malformed. */
int bench_parse_etsi_keys(const char *body, size_t len, size_t want, size_t klen, bench_key_id *ids,
                          uint8_t *keys);
/* {"keyId":"hex","key":"hex",..} with a key of klen bytes. 0 or -1. */
int bench_parse_skip_key(const char *body, size_t len, size_t klen, bench_key_id id, uint8_t *key);
/* Any JSON object (status answers). 0 or -1. */
int bench_parse_object(const char *body, size_t len);

#endif
