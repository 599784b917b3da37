#!/usr/bin/env bash
# EXCLUSIVE: runs alone (tests/run-integration): concurrent load.
# kmed_pair_load_10k.sh - SLOW (about 40 s): kmed_pair_load.sh with 10,000 single-key
# reservations per direction (A->B and B->A concurrently, 40,000 ETSI requests in all).
# Runs only with QK_SLOW=1 (make check sets it).
PAIR_LOAD_KEYS=10000 PAIR_LOAD_NUMBER=1 exec bash "$(dirname "$0")/kmed_pair_load.sh"
