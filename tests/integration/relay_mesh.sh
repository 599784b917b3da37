#!/usr/bin/env bash
# relay_mesh.sh - the mesh preset (issue 14): 7 KMEs and 10 links of every link model preset at
# their own distances come up and fill their pools; every KME routes to every other one (admin
# GET /routes: 42 routes, none longer than the mesh's 3-hop diameter, each path made of links
# of lab.json); ETSI 014 keys relayed between KME_A and KME_G (3 hops) both ways and between
# two KMEs whose shortest path is unique (KME_B to KME_F over KME_D) match byte for byte.
# One lab, ~20 s.
set -u
# shellcheck source=../lib/lab.sh
. "$(dirname "$0")/../lib/lab.sh"
# shellcheck source=../lib/relay.sh
. "$(dirname "$0")/../lib/relay.sh"
N=mesh

lab_up "$N" --preset mesh
{ [ "$(lab_json "$N" '.kmes | length')" = 7 ] && [ "$(lab_json "$N" '.links | length')" = 10 ]; } ||
  fail "lab.json: $(lab_json "$N" '.kmes | length') KMEs, $(lab_json "$N" '.links | length') links"
[ "$(lab_json "$N" '[.links[].preset] | unique | length')" = 4 ] ||
  fail "lab.json: the mesh's links use $(lab_json "$N" '[.links[].preset] | unique | join(",")')"
ok "qkd-lab up --preset mesh: 7 KMEs, 10 links of 4 model presets, every pool holds keys"

# Every route of every KME: 6 destinations each, a path of 1..3 hops over links of lab.json.
lab_json "$N" '.links[] | .kmes | sort | join("~")' | sort >"$T/links"
all_routes() {
  local k
  : >"$T/routes"
  for k in $(lab_json "$N" '.kmes[].id'); do
    routes_json "$N" "$k" | jq -c --arg k "$k" '.routes[] | {from: $k, to, path}' >>"$T/routes" || return 1
  done
  [ "$(wc -l <"$T/routes")" = 42 ] && ! grep -q '"path":null' "$T/routes"
}
WAIT_STEP=1 wait_for all_routes 40 "42 routes" || { grep null "$T/routes"; fail "not every KME routes to every other"; }
jq -e 'select(.path[0] != .from or .path[-1] != .to or (.path | length) > 4)' "$T/routes" &&
  fail "a route that does not go from its KME to its destination in at most 3 hops"
jq -r '.path as $p | range(0; ($p | length) - 1) | [$p[.], $p[. + 1]] | sort | join("~")' \
  "$T/routes" | sort -u | comm -23 - "$T/links" >"$T/unknown"
[ -s "$T/unknown" ] && fail "routes over links the mesh does not have: $(tr '\n' ' ' <"$T/unknown")"
[ "$(route_of "$N" KME_B KME_F)" = "KME_B>KME_D>KME_F" ] || fail "KME_B's route to KME_F: $(route_of "$N" KME_B KME_F)"
ok "every KME routes to the 6 others over the mesh's links, in at most 3 hops"

etsi_pair_key "$N" KME_A SAE_A1 KME_G SAE_G1 || fail "key KME_A -> KME_G"
etsi_pair_key "$N" KME_G SAE_G2 KME_A SAE_A2 || fail "key KME_G -> KME_A"
etsi_pair_key "$N" KME_B SAE_B1 KME_F SAE_F1 || fail "key KME_B -> KME_F"
ok "ETSI 014 keys relayed across the mesh: the same bytes at both ends"

pids=$(lab_pids "$N")
"$LAB" down --dir "$T/$N" >/dev/null || fail "qkd-lab down"
for p in $pids; do pid_running "$p" && fail "process $p still runs after qkd-lab down"; done
no_san_reports "$N"
echo PASS
