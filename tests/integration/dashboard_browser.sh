#!/usr/bin/env bash
# EXCLUSIVE: runs alone (tests/run-integration): a headless browser that needs the CPU for its time-outs.
# dashboard_browser.sh - the lab dashboard (qkd-dash, docs/dashboard.md) in a real browser:
# headless Chromium driven through chromedriver with the W3C WebDriver protocol
# (https://www.w3.org/TR/webdriver2/) over curl + jq. The page, loaded from the URL qkd-lab up
# recorded in lab.json, shows every KME and link of lab.json with a non-zero rate; the `down`
# button of a link turns its state to down on the page and in the KMEs' /metrics (qkd_link_up 0)
# within a few seconds, and `up` brings it back; /api/state says what the page says. A
# screenshot is kept as $BUILD/artefacts/dashboard.png. Every wait is bounded.
# shellcheck disable=SC2016 # wait_for conditions are single-quoted: evaluated at each try
set -u
# shellcheck source=../lib/lab.sh
. "$(dirname "$0")/../lib/lab.sh"
# shellcheck source=../lib/ports.sh
. "$ROOT/tests/lib/ports.sh"
qk_need_bin "$BUILD/bin/qkd-dash"
qk_need_cmd chromium chromedriver base64
ART=$BUILD/artefacts
mkdir -p "$ART"

L=KME_A~KME_B
lab_up web
DASH=$(lab_json web .dashboard_url)
[ -n "$DASH" ] && [ "$DASH" != null ] || fail "lab.json has no dashboard_url"
grep -qF "dashboard $DASH/" "$T/web.up" || fail "qkd-lab up did not print the dashboard URL"
case $DASH in http://127.0.0.1:*) ;; *) fail "dashboard not on loopback: $DASH" ;; esac
ok "qkd-lab up started qkd-dash at $DASH"

# ---- chromedriver -----------------------------------------------------------------------------
WD_PORT=$(free_port) || fail "no free port for chromedriver"
chromedriver --port="$WD_PORT" --log-path="$T/chromedriver.log" >"$T/chromedriver.out" 2>&1 &
WD_PID=$!
WD=http://127.0.0.1:$WD_PORT
SID=
_wd_cleanup() {
  [ -n "$SID" ] && curl -s --max-time 10 -X DELETE "$WD/session/$SID" >/dev/null
  kill "$WD_PID" 2>/dev/null
  wait "$WD_PID" 2>/dev/null
  _lab_cleanup
}
trap _wd_cleanup EXIT
wait_for '[ "$(curl -s --max-time 2 "$WD/status" | jq -r .value.ready 2>/dev/null)" = true ]' 20 \
  "chromedriver to be ready" || fail "chromedriver did not start (see $T/chromedriver.log)"

# wd METHOD PATH [JSON]: the WebDriver command's .value; fails on a WebDriver error.
wd() {
  local out
  out=$(curl -s --max-time 60 -X "$1" -H 'Content-Type: application/json' \
    ${3:+--data-binary "$3"} "$WD/session${SID:+/$SID}$2") || { echo "webdriver $1 $2: no answer" >&2; return 1; }
  if [ "$(printf '%s' "$out" | jq -r '.value.error? // empty')" != "" ]; then
    echo "webdriver $1 $2: $(printf '%s' "$out" | jq -c .value | head -c 400)" >&2
    return 1
  fi
  printf '%s' "$out" | jq -c .value
}
# wd_find CSS: the element reference of the first match (W3C WebDriver "Find Element").
wd_find() {
  wd POST /element "$(jq -nc --arg v "$1" '{using: "css selector", value: $v}')" |
    jq -r '.["element-6066-11e4-a52e-4f735466cecf"]'
}
count() { wd POST /elements "$(jq -nc --arg v "$1" '{using: "css selector", value: $v}')" | jq length; }
text() { local e; e=$(wd_find "$1") && wd GET "/element/$e/text" | jq -r .; }
attr() { local e; e=$(wd_find "$1") && wd GET "/element/$e/attribute/$2" | jq -r .; }
click() { local e; e=$(wd_find "$1") && wd POST "/element/$e/click" '{}' >/dev/null; }
screenshot() { wd GET /screenshot | jq -r . | base64 -d >"$1"; }

UDD=$T/chrome-profile
mkdir -p "$UDD"
caps=$(jq -nc --arg udd "--user-data-dir=$UDD" '{capabilities: {alwaysMatch: {browserName: "chrome",
  "goog:chromeOptions": {binary: "/usr/bin/chromium", args: ["--headless", "--no-sandbox",
  "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1500", $udd]}}}}')
SID=$(wd POST "" "$caps" | jq -r .sessionId) && [ -n "$SID" ] && [ "$SID" != null ] ||
  fail "no WebDriver session (see $T/chromedriver.log)"
wd POST /url "$(jq -nc --arg u "$DASH/" '{url: $u}')" >/dev/null || fail "navigate to $DASH/"
ok "headless Chromium opened the dashboard (session $SID)"

# ---- every KME and link of lab.json, with non-zero rates --------------------------------------
rate_of() { # LINK: the secret-key rate the map shows, in bit/s ("28.5 kbit/s" -> 28500)
  text ".edge[data-link=\"$1\"] .edge-rate" 2>/dev/null |
    awk '{ m = $2 == "kbit/s" ? 1e3 : $2 == "Mbit/s" ? 1e6 : $2 == "bit/s" ? 1 : -1; printf "%.0f\n", m < 0 ? -1 : $1 * m }'
}
page_state() { attr ".edge[data-link=\"$1\"]" data-state 2>/dev/null; }
card_state() { text ".link-card[data-link=\"$1\"] .badge.state" 2>/dev/null; }
check_lab_shown() { # NAME: every KME and link of the lab's lab.json on the page, every link up with a rate
  local n=$1 k l
  for k in $(lab_json "$n" '.kmes[].id'); do
    [ "$(count ".node[data-kme=\"$k\"]")" = 1 ] || { echo "KME $k not on the map"; return 1; }
    [ "$(count ".kme-card[data-kme=\"$k\"]")" = 1 ] || { echo "KME $k has no card"; return 1; }
  done
  for l in $(lab_json "$n" '.links[].id'); do
    [ "$(page_state "$l")" = up ] || { echo "link $l: state $(page_state "$l")"; return 1; }
    [ "$(rate_of "$l")" -gt 0 ] || { echo "link $l: rate $(rate_of "$l")"; return 1; }
    [ "$(count ".link-card[data-link=\"$l\"] svg polyline")" -ge 4 ] || { echo "link $l: charts missing"; return 1; }
  done
}
wait_for 'check_lab_shown web >/dev/null' 30 "every KME and link on the page, links up with a rate" ||
  { check_lab_shown web; fail "the page does not show the lab"; }
ok "the page shows $(lab_json web '.kmes | length') KMEs and $(lab_json web '.links | length') link(s), rate $(rate_of "$L") bit/s"

# What the page shows is what /api/state says.
api_rate=$(curl -s --max-time 5 "$DASH/api/state" | jq -r --arg l "$L" '.links[] | select(.id == $l) | .rate_bps')
awk -v a="$api_rate" -v p="$(rate_of "$L")" 'BEGIN { exit !(a > 0 && p > 0.9 * a && p < 1.1 * a) }' ||
  fail "page rate $(rate_of "$L") vs /api/state $api_rate"
ok "/api/state agrees with the page (rate_bps $api_rate)"
# /api/history?since=T serves only samples newer than T (the page appends them: no duplicate).
h=$(curl -s --max-time 5 "$DASH/api/history")
since=$(printf '%s' "$h" | jq '.t[-2]')
[ "$(printf '%s' "$h" | jq --arg l "$L" '.links[$l].rate | length')" = "$(printf '%s' "$h" | jq '.t | length')" ] ||
  fail "/api/history: series and times of different lengths"
curl -s --max-time 5 "$DASH/api/history?since=$since" | jq -e --argjson s "$since" '(.t | length) >= 1 and all(.t[]; . > $s)' >/dev/null ||
  fail "/api/history?since=$since serves samples not newer than since"
ok "/api/history: one time per sample, since= serves only newer samples"

# ---- down through the page's control, then up ---------------------------------------------------
kme_up() { kme_metric web "$1" qkd_link_up "link=\"$L\""; }
click ".link-card[data-link=\"$L\"] button[data-fault=\"down\"]" || fail "click down"
wait_for '[ "$(page_state "$L")" = down ] && [ "$(card_state "$L")" = down ]' 10 "the page to show $L down" ||
  fail "page state $(page_state "$L") / $(card_state "$L") after down"
wait_for '[ "$(kme_up KME_A)" = 0.000000 ] && [ "$(kme_up KME_B)" = 0.000000 ]' 15 "qkd_link_up 0 at both KMEs" ||
  fail "KMEs still report $L up after down: $(kme_up KME_A) $(kme_up KME_B)"
[ "$(sim_link web "$L" .faults.down)" = true ] || fail "the simulator has no down fault on $L"
wait_for '[ "$(count "#events li[data-kind=\"fault\"]")" -ge 1 ]' 10 "a fault event on the page" ||
  fail "no fault event listed"
ok "the page's down button: $L down on the page, in the simulator and in both KMEs' /metrics"
screenshot "$ART/dashboard-down.png" || fail "screenshot"

click ".link-card[data-link=\"$L\"] button[data-fault=\"up\"]" || fail "click up"
wait_for '[ "$(page_state "$L")" = up ] && [ "$(rate_of "$L")" -gt 0 ]' 10 "the page to show $L up again" ||
  fail "page state $(page_state "$L") after up"
wait_for '[ "$(kme_up KME_A)" = 1.000000 ] && [ "$(kme_up KME_B)" = 1.000000 ]' 15 "qkd_link_up 1 at both KMEs" ||
  fail "KMEs do not report $L up again"
ok "the page's up button: $L up again on the page and at both KMEs"

# Let the charts show the dip, then keep a picture of the page.
sleep 3
screenshot "$ART/dashboard.png" || fail "screenshot"
[ "$(head -c 8 "$ART/dashboard.png" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ] ||
  fail "the screenshot is not a PNG"
ok "screenshot $ART/dashboard.png ($(stat -c %s "$ART/dashboard.png") bytes)"

# ---- the fault proxy refuses a cross-site request -----------------------------------------------
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -d '{"fault":"down"}' "$DASH/api/links/$L/fault")
[ "$code" = 403 ] || fail "a form-encoded fault request got $code, not 403"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -H 'Content-Type: application/json' \
  -H 'Origin: http://example.org' -d '{"fault":"down"}' "$DASH/api/links/$L/fault")
[ "$code" = 403 ] || fail "a cross-origin fault request got $code, not 403"
[ "$(sim_link web "$L" .faults.down)" = false ] || fail "a refused request set a fault"
ok "fault requests that are not same-origin JSON are refused (403)"

# qkd-lab down stops qkd-dash with the rest; nothing a sanitizer build reports in its output.
dpid=$(cat "$T/web/dashboard/dash.pid")
"$LAB" down --dir "$T/web" >/dev/null || fail "qkd-lab down"
pid_running "$dpid" && fail "qkd-dash $dpid still runs after qkd-lab down"
no_san_reports web
ok "qkd-lab down stopped qkd-dash; no sanitizer report"

echo "dashboard_browser: all checks passed"
