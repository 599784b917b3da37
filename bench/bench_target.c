/* bench_target.c - endpoints of a benchmark run from the lab manifest. */
#include "bench_target.h"

#include <stdio.h>
#include <string.h>

static int pick_kmes(bench_target *t, const char *a, const char *b, const qkc_lab_kme *k[2])
{
    if (!a) {
        if (t->lab.n_links < 1) {
            fprintf(stderr, "qkd-bench: the manifest lists no link\n");
            return -1;
        }
        a = t->lab.links[0].kmes[0];
        b = t->lab.links[0].kmes[1];
    }
    k[0] = qkc_lab_find_kme(&t->lab, a);
    k[1] = qkc_lab_find_kme(&t->lab, b);
    if (!k[0] || !k[1] || k[0] == k[1]) {
        fprintf(stderr, "qkd-bench: KMEs %s and %s: not two KMEs of the manifest\n", a, b);
        return -1;
    }
    return 0;
}

int bench_target_load(bench_target *t, const char *lab_dir, const char *kme_a, const char *kme_b,
                      const char *baseline_url)
{
    memset(t, 0, sizeof *t);
    qkc_error e;
    memset(&e, 0, sizeof e);
    if (qkc_lab_load(lab_dir, &t->lab, &e) != 0) {
        fprintf(stderr, "qkd-bench: %s/lab.json: %s\n", lab_dir, e.msg);
        return -1;
    }
    const qkc_lab_kme *k[2];
    if (pick_kmes(t, kme_a, kme_b, k) != 0)
        goto fail;
    t->baseline = baseline_url != NULL;
    for (int i = 0; i < 2; i++) {
        t->kme_id[i] = k[i]->id;
        if (k[i]->n_saes < 1 || (!t->baseline && !k[i]->etsi014_url)) {
            fprintf(stderr, "qkd-bench: KME %s has no ETSI 014 listener or no SAE\n", k[i]->id);
            goto fail;
        }
        const qkc_lab_sae *sae = &k[i]->saes[0];
        t->sae_id[i] = sae->id;
        t->etsi[i] = (bench_endpoint){
            .url = t->baseline ? baseline_url : k[i]->etsi014_url,
            .ca = t->lab.ca_cert,
            .cert = sae->cert,
            .key = sae->key,
        };
        if (t->baseline) {
            t->skip[i] = t->etsi[i]; /* nginx has no TLS-PSK: the same TLS 1.3 over mTLS */
        } else if (k[i]->skip_url && k[i]->n_skip_clients > 0) {
            const qkc_lab_skip_client *sc = &k[i]->skip_clients[0];
            t->skip[i] = (bench_endpoint){
                .url = k[i]->skip_url,
                .psk_identity = sc->identity,
                .psk = sc->psk,
                .psk_len = sc->psk_len,
            };
        }
    }
    return 0;
fail:
    qkc_lab_free(&t->lab);
    memset(t, 0, sizeof *t);
    return -1;
}

void bench_target_free(bench_target *t)
{
    qkc_lab_free(&t->lab);
    memset(t, 0, sizeof *t);
}
