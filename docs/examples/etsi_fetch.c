/* etsi_fetch.c - libqkdclient example: fetch one key from an ETSI GS QKD 014 KME as a master SAE
 * and print its key ID and its bytes in hex.
 *
 *   etsi_fetch URL CA_FILE CERT_FILE KEY_FILE SLAVE_SAE_ID [SIZE_BITS]
 *
 * Build against the installed library (make install; docs/service.md):
 *   cc -std=c11 etsi_fetch.c $(pkg-config --cflags --libs qkdclient) -o etsi_fetch
 * In the tree: make examples (-> build/examples/etsi_fetch), or by hand:
 *   cc -std=c11 -Iclient -Icommon $(pkg-config --cflags libcjson) docs/examples/etsi_fetch.c \
 *      build/lib/libqkdclient.a build/lib/libqkdcommon.a \
 *      $(pkg-config --libs libcurl libsodium libcjson openssl) -pthread -lm
 *
 * The slave SAE then fetches the same key with `qkd etsi dec MASTER_SAE_ID KEY_ID`. */
#include <stdio.h>
#include <stdlib.h>

#include "qkdclient.h"

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: %s URL CA_FILE CERT_FILE KEY_FILE SLAVE_SAE_ID [SIZE_BITS]\n",
                argv[0]);
        return 2;
    }
    if (qkc_global_init() != 0) {
        fprintf(stderr, "cannot initialise libqkdclient\n");
        return 1;
    }
    qkc_options opts = {
        .base_url = argv[1],
        .ca_file = argv[2],
        .cert_file = argv[3],
        .key_file = argv[4],
        .timeout_ms = 10000,
    };
    qkc_error err;
    qkc_client *client = qkc_client_new(&opts, &err);
    if (!client) {
        fprintf(stderr, "client: %s\n", err.msg);
        return 2;
    }
    qkc_key_request req = {.number = 1, .size = argc == 7 ? atoll(argv[6]) : 0};
    qkc_key_set keys;
    int rc = qkc_etsi_get_keys(client, argv[5], &req, QKC_AUTO, &keys, &err);
    if (rc != 0) {
        /* err.cls tells TLS, connect, HTTP (err.http_status, err.server_message) and
         * malformed answers apart. */
        fprintf(stderr, "enc_keys: %s error: %s\n", qkc_errclass_name(err.cls), err.msg);
    } else {
        printf("key_ID %s\nkey ", keys.keys[0].key_ID);
        for (size_t i = 0; i < keys.keys[0].key_len; i++)
            printf("%02x", keys.keys[0].key[i]);
        printf("\n");
        qkc_key_set_free(&keys); /* wipes the key bytes */
    }
    qkc_client_free(client);
    qkc_global_cleanup();
    return rc == 0 ? 0 : 1;
}
