/* bridge_main.c - qkd-bridge: install QKD keys as IKEv2 PPKs (strongSwan, libreswan) or MACsec
 * CAKs, in step with the paired bridge. Dispatches to the subcommands in bridge_cli.c. */
#include <stdio.h>
#include <string.h>

#include "bridge_cli.h"
#include "secbuf.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} cmds[] = {
    {"run", cmd_run, "run -c CONFIG [--port-file FILE]      run the bridge daemon"},
    {"status", cmd_status, "status (-c CONFIG | --admin URL) [--json]  key, SA, PPK, errors"},
    {"rotate", cmd_rotate, "rotate (-c CONFIG | --admin URL)     rotate the key now"},
    {"check-config", cmd_check, "check-config -c CONFIG               validate a configuration"},
    {"vici", cmd_vici, "vici [--stream EVENT] SOCKET CMD [ARGS]  raw VICI request"},
    {"macsec-render", cmd_macsec_render,
     "macsec-render -c CONFIG --key-id ID < KEYHEX  print the MACsec configuration"},
};

int main(int argc, char **argv)
{
    if (qk_secure_init() != 0) {
        fprintf(stderr, "qkd-bridge: libsodium initialisation failed\n");
        return 1;
    }
    for (size_t i = 0; argc > 1 && i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "usage: qkd-bridge COMMAND ...\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(stderr, "  qkd-bridge %s\n", cmds[i].help);
    return 2;
}
