# shellcheck shell=bash
# bench/lab.sh - the benchmark lab, shared by bench/run and bench/side-by-side (sourced; bash).
# Needs BIN (the build's bin folder) and the functions say and die of the script sourcing it.
#
# bench_lab_up DIR LOG [QKD-LAB-UP ARGS...]
#   qkd-lab up with the benchmark preset (time scale 1e5, 4 MiB blocks: about 140 Mbit/s per
#   link) in DIR, its output in LOG; dies with LOG's tail when it fails.
# bench_refill DIR BITS
#   runs the simulator's feed of the lab's first link until the pool of that link at every KME
#   holds BITS bits (progress lines every 2 s; gives up after 300 s), then stops the feed
#   (simulator fault "down") so that the KMEs alone are measured.

bench_lab_up() {
  local dir=$1 log=$2
  shift 2
  "$BIN/qkd-lab" up --dir "$dir" --time-scale 1e5 --block-bytes 4194304 --wait 120 "$@" \
    >"$log" 2>&1 || { tail -20 "$log" >&2; die "qkd-lab up failed ($dir)"; }
}

# The link's pool in bits at ADMIN_URL (0 when unknown).
bench_pool_bits() { # ADMIN_URL LINK
  curl -s --max-time 5 "$1/metrics" | awk -v l="$2" \
    '$1 == "qkd_pool_bytes{link=\"" l "\"}" { printf "%.0f\n", $2 * 8; f=1 } END { if (!f) print 0 }'
}

bench_refill() {
  local m=$1/lab.json want=$2 sim link url bits low t0=$SECONDS
  local -a admins
  sim=$(jq -r .sim_url "$m") || die "$m unreadable"
  link=$(jq -r '.links[0].id' "$m") || die "$m unreadable"
  mapfile -t admins < <(jq -r '.kmes[].admin_url' "$m")
  "$BIN/qkd-sim" fault --control "$sim" --link "$link" up >/dev/null || die "feed up ($1)"
  while :; do
    low=$want
    for url in "${admins[@]}"; do
      bits=$(bench_pool_bits "$url" "$link")
      [ "$bits" -lt "$low" ] && low=$bits
    done
    [ "$low" -ge "$want" ] && break
    [ $((SECONDS - t0)) -lt 300 ] || die "pools did not reach $want bits in 300 s (lowest $low)"
    say "  refilling pools: $((low / 1000000)) of $((want / 1000000)) Mbit"
    sleep 2
  done
  "$BIN/qkd-sim" fault --control "$sim" --link "$link" down >/dev/null || die "feed down ($1)"
}
