#!/usr/bin/env bash
# kmed_pair_load_10k.sh - SLOW: kmed_pair_load.sh with 10,000 keys per direction (A->B and
# B->A concurrently). Runs only with QK_SLOW=1 (make check sets it).
PAIR_LOAD_KEYS=10000 exec bash "$(dirname "$0")/kmed_pair_load.sh"
