/* bench_body.h - the baseline's fixed answers: files shaped and sized like the KME's (an ETSI
 * 014 key container, a SKIP key, an ETSI status), filled with random bytes that are no key
 * of anyone. nginx serves them for the requests the load generator sends. */
#ifndef BENCH_BODY_H
#define BENCH_BODY_H

/* Write DIR/etsi.json (number keys of size_bits), DIR/skip.json, DIR/status.json; DIR must
 * exist. 0, or -1 with a message on stderr. */
int bench_body_write(const char *dir, unsigned size_bits, unsigned number);
/* `qkd-bench body --dir DIR --size BITS --number K`; returns the exit status. */
int bench_body_main(int argc, char **argv);

#endif
