/* lab_key_pair.c - libqkdclient example, built against an installed copy: take the KME URLs,
 * the CA and the SAE certificates from a qkd-lab manifest (DIR/lab.json), fetch one key at the
 * master SAE's KME (ETSI GS QKD 014 "Get key", clause 5.2), fetch the same key ID at the slave
 * SAE's KME ("Get key with key IDs", clause 5.3), and check that both ends hold the same bytes.
 * It prints the key ID and its size, never the key.
 *
 *   lab_key_pair DIR MASTER_KME MASTER_SAE SLAVE_KME SLAVE_SAE
 *
 * Build against the installed library (make install; docs/service.md):
 *   cc -std=c11 lab_key_pair.c $(pkg-config --cflags --libs qkdclient) -o lab_key_pair
 * or in the tree: make examples (-> build/examples/lab_key_pair).
 * Exit: 0 same key at both ends, 1 failure, 2 usage. */
#include <stdio.h>
#include <string.h>

#include <qkdclient.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: lab_key_pair DIR MASTER_KME MASTER_SAE SLAVE_KME SLAVE_SAE\n"
               "Fetch one key at MASTER_KME as MASTER_SAE and the same key at SLAVE_KME as\n"
               "SLAVE_SAE, with the URLs and credentials of the qkd-lab lab in DIR; exit 0 when\n"
               "both ends return the same bytes.\n");
}

/* A client for SAE_ID at KME_ID of the lab: its ETSI 014 URL and certificate. */
static qkc_client *sae_client(const qkc_lab *lab, const char *kme_id, const char *sae_id)
{
    const qkc_lab_kme *kme = qkc_lab_find_kme(lab, kme_id);
    const qkc_lab_sae *sae = kme ? qkc_lab_find_sae(kme, sae_id) : NULL;
    if (!sae || !kme->etsi014_url) {
        fprintf(stderr, "lab_key_pair: no SAE %s with an ETSI 014 listener at %s\n", sae_id,
                kme_id);
        return NULL;
    }
    qkc_options o = {
        .base_url = kme->etsi014_url,
        .ca_file = lab->ca_cert,
        .cert_file = sae->cert,
        .key_file = sae->key,
        .timeout_ms = 10000,
    };
    qkc_error e;
    qkc_client *c = qkc_client_new(&o, &e);
    if (!c)
        fprintf(stderr, "lab_key_pair: client for %s: %s\n", sae_id, e.msg);
    return c;
}

/* Compare without an early exit (the time does not depend on where the keys differ). */
static int same_bytes(const qkc_key *a, const qkc_key *b)
{
    if (a->key_len != b->key_len)
        return 0;
    unsigned char d = 0;
    for (size_t i = 0; i < a->key_len; i++)
        d |= (unsigned char)(a->key[i] ^ b->key[i]);
    return d == 0;
}

static int fetch_pair(qkc_client *m, qkc_client *s, const char *master_sae, const char *slave_sae)
{
    qkc_error e;
    qkc_key_request req = {.number = 1};
    qkc_key_set enc, dec;
    if (qkc_etsi_get_keys(m, slave_sae, &req, QKC_AUTO, &enc, &e) != 0) {
        fprintf(stderr, "lab_key_pair: enc_keys: %s: %s\n", qkc_errclass_name(e.cls), e.msg);
        return 1;
    }
    const char *id = enc.keys[0].key_ID;
    int rc = 1;
    if (qkc_etsi_get_keys_with_ids(s, master_sae, &id, 1, QKC_AUTO, &dec, &e) != 0) {
        fprintf(stderr, "lab_key_pair: dec_keys: %s: %s\n", qkc_errclass_name(e.cls), e.msg);
    } else {
        if (same_bytes(&enc.keys[0], &dec.keys[0])) {
            printf("key_ID %s: %zu bits, the same at both ends\n", id, enc.keys[0].key_len * 8);
            rc = 0;
        } else {
            fprintf(stderr, "lab_key_pair: key %s differs between the two KMEs\n", id);
        }
        qkc_key_set_free(&dec); /* wipes the key bytes */
    }
    qkc_key_set_free(&enc);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc != 6) {
        usage(stderr);
        return 2;
    }
    if (qkc_global_init() != 0) {
        fprintf(stderr, "lab_key_pair: cannot initialise libqkdclient\n");
        return 1;
    }
    int rc = 1;
    qkc_lab lab;
    qkc_error e;
    if (qkc_lab_load(argv[1], &lab, &e) != 0) {
        fprintf(stderr, "lab_key_pair: %s: %s\n", argv[1], e.msg);
        qkc_global_cleanup();
        return 1;
    }
    qkc_client *m = sae_client(&lab, argv[2], argv[3]);
    qkc_client *s = m ? sae_client(&lab, argv[4], argv[5]) : NULL;
    if (m && s)
        rc = fetch_pair(m, s, argv[3], argv[5]);
    qkc_client_free(s); /* NULL is a no-op */
    qkc_client_free(m);
    qkc_lab_free(&lab);
    qkc_global_cleanup();
    return rc;
}
