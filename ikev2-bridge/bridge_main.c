/* bridge_main.c - qkd-bridge: install QKD keys as IKEv2 PPKs (strongSwan, libreswan) or MACsec
 * CAKs, in step with the paired bridge. Chooses a subcommand (bridge_cmds.h, one file each)
 * from the table below. */
#include <stdio.h>
#include <string.h>

#include "bridge_cmds.h"
#include "secbuf.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} CMDS[] = {
    {"run", qkb_cmd_run, "run -c CONFIG [--port-file FILE]      run the bridge daemon"},
    {"status", qkb_cmd_status, "status (-c CONFIG | --admin URL) [--json]  key, SA, PPK, errors"},
    {"rotate", qkb_cmd_rotate, "rotate (-c CONFIG | --admin URL)     rotate the key now"},
    {"check-config", qkb_cmd_check_config,
     "check-config -c CONFIG               validate a configuration"},
    {"vici", qkb_cmd_vici, "vici [--stream EVENT] SOCKET CMD [ARGS]  raw VICI request"},
    {"macsec-render", qkb_cmd_macsec_render,
     "macsec-render -c CONFIG --key-id ID < KEYHEX  print the MACsec configuration"},
};

int main(int argc, char **argv)
{
    if (qk_secure_init() != 0) {
        fprintf(stderr, "qkd-bridge: libsodium initialisation failed\n");
        return 1;
    }
    for (size_t i = 0; argc > 1 && i < sizeof CMDS / sizeof CMDS[0]; i++)
        if (strcmp(argv[1], CMDS[i].name) == 0)
            return CMDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "usage: qkd-bridge COMMAND ...\n");
    for (size_t i = 0; i < sizeof CMDS / sizeof CMDS[0]; i++)
        fprintf(stderr, "  qkd-bridge %s\n", CMDS[i].help);
    return 2;
}
