/* kms_fixture.h - a running qk_kms for unit suites: a temporary data directory and master key
 * file, a configuration without links (every request is same-KME, node KF_NODE) and small
 * limits, and SAEs registered at this node. */
#ifndef QK_KMS_FIXTURE_H
#define QK_KMS_FIXTURE_H

#include "kms.h"
#include "store_fixture.h"

#define KF_NODE      "KME_A"
#define KF_MAX_COUNT 5 /* [keys] max_key_count */

typedef struct {
    sf_dir dir;
    char key_path[160];
    qk_kmed_config *cfg;
    qk_kms *kms;
} kf_kme;

/* Open a KME whose registered SAEs (all at KF_NODE) are the NULL-terminated saes (may be
 * NULL). Limits: sizes 64..1024 bits (default 256), 10 keys per request, max_key_count
 * KF_MAX_COUNT, 2 additional slaves. 0, or -1 (prints why). */
int kf_open(kf_kme *f, const char *const *saes);
/* Close the KME and remove its files. */
void kf_close(kf_kme *f);

#endif
