/* public_rand_int.h - what the unit tests observe of public_rand.c. */
#ifndef QK_PUBLIC_RAND_INT_H
#define QK_PUBLIC_RAND_INT_H

/* How many kernel keys the calling thread's generator has taken (its first call, every
 * PR_RESEED bytes served, after a fork). */
unsigned qk_public_rand_seeds(void);

#endif
