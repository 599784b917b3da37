/* bench_store.h - `qkd-bench store`: the key store alone (no HTTP, no TLS). Two stores in one
 * process play KME A and KME B of one link; each key pair runs the store calls of one ETSI
 * request on the KME's remote path: carve_owned at A (leasing when A's lease runs out), notice_in
 * at B and notices_done at A (batched), fetch at B (bench/README.md). */
#ifndef BENCH_STORE_H
#define BENCH_STORE_H

/* argv[0] is "store". Returns the exit status: 0 ok, 1 failure (setup, a failed or
 * mismatching pair, output), 2 usage. */
int bench_store_main(int argc, char **argv);

#endif
