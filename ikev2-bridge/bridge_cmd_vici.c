/* bridge_cmd_vici.c - `qkd-bridge vici [--stream EVENT] SOCKET COMMAND [ARGS]`: one raw VICI
 * request (vici_client.h), its answer (and streamed events) printed as a tree. Arguments:
 * key=value, key=0xHEX (binary), key[]=item (list), name{ ... } (section). The exit status is 1
 * when the answer carries success=no. */
#include <stdio.h>
#include <string.h>

#include "bridge_cmds.h"
#include "codec.h"
#include "secbuf.h"
#include "vici_client.h"

static void print_tree(const vici_node *n, int depth)
{
    for (; n; n = n->next) {
        char v[512];
        switch (n->type) {
        case VICI_N_SECTION:
            printf("%*s%s {\n", depth * 2, "", n->name);
            print_tree(n->child, depth + 1);
            printf("%*s}\n", depth * 2, "");
            break;
        case VICI_N_KV:
            vici_printable(n->value, n->value_len, v, sizeof v);
            printf("%*s%s = %s\n", depth * 2, "", n->name, v);
            break;
        case VICI_N_LIST:
            printf("%*s%s = [", depth * 2, "", n->name);
            for (const vici_node *i = n->child; i; i = i->next) {
                vici_printable(i->value, i->value_len, v, sizeof v);
                printf(" %s", v);
            }
            printf(" ]\n");
            break;
        case VICI_N_ITEM:
            break;
        }
    }
}

static int print_event(void *ctx, const vici_node *ev)
{
    (void)ctx;
    print_tree(ev->child, 0);
    return 0;
}

int qkb_cmd_vici(int argc, char **argv)
{
    const char *stream = NULL;
    int a = 1;
    if (a + 1 < argc && strcmp(argv[a], "--stream") == 0) {
        stream = argv[a + 1];
        a += 2;
    }
    if (argc - a < 2) {
        fprintf(stderr, "usage: qkd-bridge vici [--stream EVENT] SOCKET COMMAND "
                        "[key=value | key=0xHEX | key[]=item | name{ | }]...\n");
        return 2;
    }
    const char *sock = argv[a], *cmd = argv[a + 1];
    vici_builder b;
    vici_builder_init(&b, 0);
    char open_list[256] = "";
    for (int i = a + 2; i < argc; i++) {
        char *arg = argv[i];
        size_t l = strlen(arg);
        char *eq = strchr(arg, '=');
        bool is_sec = !eq && l > 1 && arg[l - 1] == '{', is_end = !eq && strcmp(arg, "}") == 0;
        if (open_list[0] &&
            (is_sec || is_end || !eq || !strstr(arg, "[]=") ||
             strncmp(arg, open_list, strlen(open_list)) != 0 || arg[strlen(open_list)] != '[')) {
            vici_list_end(&b);
            open_list[0] = '\0';
        }
        if (is_sec) {
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(l - 1), arg);
            vici_section_start(&b, name);
        } else if (is_end) {
            vici_section_end(&b);
        } else if (eq) {
            char name[256];
            char *br = strstr(arg, "[]=");
            size_t nl = (size_t)((br && br < eq ? br : eq) - arg);
            snprintf(name, sizeof name, "%.*s", (int)nl, arg);
            const char *val = eq + 1;
            uint8_t bin[4096];
            size_t bl = 0;
            bool hex = strncmp(val, "0x", 2) == 0;
            if (hex && qk_hex_decode(val + 2, strlen(val + 2), bin, sizeof bin, &bl) != 0) {
                fprintf(stderr, "qkd-bridge: bad hex in %s\n", name);
                vici_builder_free(&b);
                return 2;
            }
            if (br && br < eq) {
                if (!open_list[0]) {
                    vici_list_start(&b, name);
                    snprintf(open_list, sizeof open_list, "%s", name);
                }
                if (hex)
                    vici_list_item(&b, bin, bl);
                else
                    vici_list_item_str(&b, val);
            } else if (hex) {
                vici_kv(&b, name, bin, bl);
            } else {
                vici_kv_str(&b, name, val);
            }
            qk_wipe(bin, sizeof bin);
        } else {
            fprintf(stderr, "qkd-bridge: bad argument %s\n", arg);
            vici_builder_free(&b);
            return 2;
        }
    }
    if (open_list[0])
        vici_list_end(&b);
    qk_err e;
    vici_conn *c = NULL;
    vici_node *resp = NULL;
    int rc = vici_connect(sock, 3000, &c, &e);
    if (rc == 0)
        rc = stream
                 ? vici_call_stream(c, cmd, &b, stream, print_event, NULL, 10000, 30000, &resp, &e)
                 : vici_call(c, cmd, &b, 60000, &resp, &e);
    vici_close(c);
    vici_builder_free(&b);
    if (rc) {
        fprintf(stderr, "qkd-bridge: %s\n", e.msg);
        return 1;
    }
    print_tree(resp->child, 0);
    bool ok = !vici_child(resp, "success", VICI_N_KV) || vici_success(resp);
    vici_tree_free(resp);
    return ok ? 0 : 1;
}
