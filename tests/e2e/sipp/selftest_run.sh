#!/usr/bin/env bash
# selftest_run.sh - prove the sip-edge client scenarios in this folder against
# SIPp itself: selftest_uas_refuse.xml plays the edge, once sending the right
# thing (client must exit 0) and once sending a wrong code / a missing or
# changed header (client must exit non-zero).
#
# Usage:  tests/e2e/sipp/selftest_run.sh            # ~1 s per case
#         SELFTEST_SLOW=1 tests/e2e/sipp/selftest_run.sh
#                                  # + "no responder" cases (20 s each)
#         SELFTEST_OUT=/tmp/x ...  # where logs go (default: mktemp -d)
#
# Loopback only: UAS 127.0.0.1:15060, clients 127.0.0.1:15061 upwards.
# Every sipp run is bounded: -m 1 -timeout 20s -timeout_error. The UAS is
# started in the background and, if it has not finished 3 s after its
# client, killed by its PID. Exit status: 0 when every case matched its
# expected client exit code, 1 otherwise.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=selftest_lib.sh
. "$HERE/selftest_lib.sh"
selftest_init sipp-selftest
UAS_PORT=15060
CLIENT_PORT=15061

# Default keys for the UAS: a correct draining 503 for INVITE.
uas_keys_503=(-key code 503 -key ra_name Retry-After -key ra_val 30
    -key reason_name Reason -key reason_val 'SIP;cause=503;text="site draining"'
    -key contact_name X-No-Contact -key contact_val none -key trying yes)

# run_case <label> <expected client rc> <client xml> [client args...] -- [uas args...|NOUAS]
run_case() {
    local label=$1 expect=$2 xml=$3
    shift 3
    split_args "$@"
    local cargs=("${ARGS1[@]}") uargs=("${ARGS2[@]}")
    next_tag
    local tag=$TAG
    local uas_pid="" uas_rc="-"

    if [ "${uargs[0]:-}" != "NOUAS" ]; then
        "$SIPP" -sf "$HERE/selftest_uas_refuse.xml" -i 127.0.0.1 -p "$UAS_PORT" \
            -m 1 -timeout 20s -timeout_error -nostdin \
            -trace_err -error_file "$OUT/$tag.uas.err" \
            -trace_msg -message_file "$OUT/$tag.uas.msg" \
            -trace_logs -log_file "$OUT/$tag.uas.log" \
            "${uargs[@]}" >"$OUT/$tag.uas.out" 2>&1 </dev/null &
        uas_pid=$!
        wait_udp_bound "$UAS_PORT" || echo "warning: UAS not bound on $UAS_PORT" >&2
    else
        uas_rc="none"
    fi

    "$SIPP" "127.0.0.1:$UAS_PORT" -sf "$HERE/$xml" -m 1 -i 127.0.0.1 -p "$CLIENT_PORT" \
        -t u1 -timeout 20s -timeout_error -nostdin \
        -trace_err -error_file "$OUT/$tag.client.err" \
        -trace_msg -message_file "$OUT/$tag.client.msg" \
        -trace_logs -log_file "$OUT/$tag.client.log" \
        -s 1001 "${cargs[@]}" >"$OUT/$tag.client.out" 2>&1 </dev/null
    local rc=$?
    CLIENT_PORT=$((CLIENT_PORT + 1))

    if [ -n "$uas_pid" ]; then
        wait_pid "$uas_pid" 3
        uas_rc=$WAIT_RC
    fi

    set_verdict "$expect" "$rc"
    printf '%s  %-30s  %-50s  expect %-3s got %-3s  uas %-6s  %s\n' \
        "$tag" "$xml" "$label" "$expect" "$rc" "$uas_rc" "$VERDICT"
}

echo "logs: $OUT"
printf '%s  %-30s  %-50s  %s\n' "#" "scenario" "responder behaviour" "client exit / responder exit"

# ---- options_200.xml --------------------------------------------------------
run_case "200 OK" 0 options_200.xml -- \
    -key code 200 -key ra_name X-A -key ra_val 1 -key reason_name X-B -key reason_val 2 \
    -key contact_name X-C -key contact_val 3 -key trying no
run_case "503 (draining)" 1 options_200.xml -- "${uas_keys_503[@]}"

# ---- options_503.xml --------------------------------------------------------
run_case "503" 0 options_503.xml -- "${uas_keys_503[@]}"
run_case "200 OK (still active)" 1 options_503.xml -- \
    -key code 200 -key ra_name X-A -key ra_val 1 -key reason_name X-B -key reason_val 2 \
    -key contact_name X-C -key contact_val 3 -key trying no

# ---- register_ok.xml --------------------------------------------------------
ok200=(-key code 200 -key ra_name X-A -key ra_val 1 -key reason_name X-B -key reason_val 2 -key trying no)
run_case "200, Contact echoed ;expires=3600" 0 register_ok.xml -- \
    "${ok200[@]}" -key contact_name Contact -key contact_val "<sip:1001@127.0.0.1:$CLIENT_PORT>;expires=3600"
run_case "200, lower-case contact: + Expires: hdr" 0 register_ok.xml -- \
    -key code 200 -key ra_name Expires -key ra_val 3600 -key reason_name X-B -key reason_val 2 -key trying no \
    -key contact_name contact -key contact_val "<sip:1001@127.0.0.1:$CLIENT_PORT>"
run_case "200, other binding first, ours second" 0 register_ok.xml -- \
    -key code 200 -key ra_name X-A -key ra_val 1 -key trying no \
    -key reason_name Contact -key reason_val '<sip:1001@127.0.0.9:5999>;expires=60' \
    -key contact_name Contact -key contact_val "<sip:1001@127.0.0.1:$CLIENT_PORT>;expires=3600"
run_case "200, compact m: <...>;expires=60" 0 register_ok.xml -- \
    "${ok200[@]}" -key contact_name m -key contact_val "<sip:1001@127.0.0.1:$CLIENT_PORT>;expires=60"
run_case "200 without Contact (X-No-Contact: has it)" 1 register_ok.xml -- \
    "${ok200[@]}" -key contact_name X-No-Contact -key contact_val "<sip:1001@127.0.0.1:$CLIENT_PORT>;expires=3600"
run_case "200, Contact of another binding only" 1 register_ok.xml -- \
    "${ok200[@]}" -key contact_name Contact -key contact_val '<sip:1001@127.0.0.9:5999>;expires=3600'
run_case "200, Contact ;expires=0" 1 register_ok.xml -- \
    "${ok200[@]}" -key contact_name Contact -key contact_val "<sip:1001@127.0.0.1:$CLIENT_PORT>;expires=0"
run_case "200, Contact without any expiry" 1 register_ok.xml -- \
    "${ok200[@]}" -key contact_name Contact -key contact_val "<sip:1001@127.0.0.1:$CLIENT_PORT>"
run_case "503 (draining)" 1 register_ok.xml -- "${uas_keys_503[@]}"

# ---- register_refused.xml ---------------------------------------------------
run_case "503 + Retry-After: 30" 0 register_refused.xml -key retry_after 30 -- "${uas_keys_503[@]}"
run_case "503 + Retry-After: 30 (comment);duration=60" 0 register_refused.xml -key retry_after 30 -- \
    -key code 503 -key ra_name Retry-After -key ra_val '30 (draining);duration=60' \
    -key reason_name X-B -key reason_val 2 -key contact_name X-C -key contact_val 3 -key trying no
run_case "503 + lower-case retry-after: 30" 0 register_refused.xml -key retry_after 30 -- \
    -key code 503 -key ra_name retry-after -key ra_val 30 \
    -key reason_name X-B -key reason_val 2 -key contact_name X-C -key contact_val 3 -key trying no
run_case "503, no Retry-After (X-No-Retry-After: 30)" 1 register_refused.xml -key retry_after 30 -- \
    -key code 503 -key ra_name X-No-Retry-After -key ra_val 30 \
    -key reason_name X-B -key reason_val 2 -key contact_name X-C -key contact_val 3 -key trying no
run_case "503 + Retry-After: 31" 1 register_refused.xml -key retry_after 30 -- \
    -key code 503 -key ra_name Retry-After -key ra_val 31 \
    -key reason_name X-B -key reason_val 2 -key contact_name X-C -key contact_val 3 -key trying no
run_case "503 + Retry-After: 300" 1 register_refused.xml -key retry_after 30 -- \
    -key code 503 -key ra_name Retry-After -key ra_val 300 \
    -key reason_name X-B -key reason_val 2 -key contact_name X-C -key contact_val 3 -key trying no
run_case "200 OK (registered while draining)" 1 register_refused.xml -key retry_after 30 -- \
    "${ok200[@]}" -key contact_name Contact -key contact_val "<sip:1001@127.0.0.1:$CLIENT_PORT>;expires=3600"
run_case "client run without -key retry_after" 1 register_refused.xml -- "${uas_keys_503[@]}"

# ---- invite_refused_503.xml -------------------------------------------------
inv503() { # sets UK: a 100 + 503 with the given Retry-After / Reason keys
    UK=(-key code 503 -key trying yes -key contact_name X-No-Contact -key contact_val none "$@")
}
inv503 -key ra_name Retry-After -key ra_val 30 -key reason_name Reason -key reason_val 'SIP;cause=503;text="site draining"'
run_case "100 + 503 + Retry-After 30 + Reason" 0 invite_refused_503.xml -key retry_after 30 -- "${UK[@]}"
UK=(-key code 503 -key trying no -key ra_name Retry-After -key ra_val 30
    -key reason_name Reason -key reason_val 'SIP;cause=503;text="site draining"'
    -key contact_name X-No-Contact -key contact_val none)
run_case "503 without 100" 0 invite_refused_503.xml -key retry_after 30 -- "${UK[@]}"
inv503 -key ra_name Retry-After -key ra_val 30 -key reason_name Reason -key reason_val 'Q.850;cause=41, SIP;text="site draining";cause=503'
run_case "Reason: Q.850 first, SIP;text;cause=503 2nd" 0 invite_refused_503.xml -key retry_after 30 -- "${UK[@]}"
UK=(-key code 503 -key trying yes -key ra_name Retry-After -key ra_val 30
    -key reason_name Reason -key reason_val 'Q.850;cause=41'
    -key contact_name reason -key contact_val 'SIP ; cause = 503')
run_case "2 Reason lines, 2nd lower-case with SIP" 0 invite_refused_503.xml -key retry_after 30 -- "${UK[@]}"
inv503 -key ra_name Retry-After -key ra_val 30 -key reason_name X-No-Reason -key reason_val 'SIP;cause=503'
run_case "503, no Reason (X-No-Reason: SIP;cause=503)" 1 invite_refused_503.xml -key retry_after 30 -- "${UK[@]}"
inv503 -key ra_name Retry-After -key ra_val 30 -key reason_name Reason -key reason_val 'SIP;cause=480;text="site draining"'
run_case "Reason: SIP;cause=480" 1 invite_refused_503.xml -key retry_after 30 -- "${UK[@]}"
inv503 -key ra_name Retry-After -key ra_val 30 -key reason_name Reason -key reason_val 'SIP;cause=5030'
run_case "Reason: SIP;cause=5030" 1 invite_refused_503.xml -key retry_after 30 -- "${UK[@]}"
inv503 -key ra_name Retry-After -key ra_val 30 -key reason_name Reason -key reason_val 'Q.850;cause=503'
run_case "Reason: Q.850;cause=503 (not SIP)" 1 invite_refused_503.xml -key retry_after 30 -- "${UK[@]}"
inv503 -key ra_name X-No-Retry-After -key ra_val 30 -key reason_name Reason -key reason_val 'SIP;cause=503'
run_case "503, no Retry-After (X-No-Retry-After: 30)" 1 invite_refused_503.xml -key retry_after 30 -- "${UK[@]}"
inv503 -key ra_name Retry-After -key ra_val 60 -key reason_name Reason -key reason_val 'SIP;cause=503'
run_case "Retry-After: 60 (key 30)" 1 invite_refused_503.xml -key retry_after 30 -- "${UK[@]}"
UK=(-key code 486 -key trying yes -key ra_name Retry-After -key ra_val 30
    -key reason_name Reason -key reason_val 'SIP;cause=503' -key contact_name X-C -key contact_val 3)
run_case "486 (with Retry-After + Reason)" 1 invite_refused_503.xml -key retry_after 30 -- "${UK[@]}"
UK=(-key code 302 -key trying yes -key ra_name Retry-After -key ra_val 30
    -key reason_name Reason -key reason_val 'SIP;cause=503' -key contact_name Contact -key contact_val '<sip:127.0.0.2:5060>')
run_case "302 instead of 503" 1 invite_refused_503.xml -key retry_after 30 -- "${UK[@]}"
UK=(-key code 200 -key trying yes -key ra_name X-A -key ra_val 1
    -key reason_name X-B -key reason_val 2 -key contact_name Contact -key contact_val '<sip:uas@127.0.0.1:15060>')
run_case "200 OK (call accepted while draining)" 1 invite_refused_503.xml -key retry_after 30 -- "${UK[@]}"

# ---- invite_refused_302.xml -------------------------------------------------
r302() { # sets UK: a 100 + 302 with the given Contact keys
    UK=(-key code 302 -key trying yes -key ra_name X-A -key ra_val 1 -key reason_name X-B -key reason_val 2 "$@"); }
r302 -key contact_name Contact -key contact_val '<sip:127.0.0.2:5060;transport=udp>'
run_case "302 Contact <sip:127.0.0.2:5060;transport=udp>" 0 invite_refused_302.xml -key peer_uri sip:127.0.0.2:5060 -- "${UK[@]}"
r302 -key contact_name Contact -key contact_val '<sip:1001@127.0.0.2:5060>'
run_case "302 Contact with user part, key host only" 0 invite_refused_302.xml -key peer_uri 127.0.0.2:5060 -- "${UK[@]}"
r302 -key contact_name Contact -key contact_val '<sip:127.0.0.3:5060>'
run_case "302 Contact of another site" 1 invite_refused_302.xml -key peer_uri sip:127.0.0.2:5060 -- "${UK[@]}"
r302 -key contact_name Contact -key contact_val '<sip:127x0x0x2:5060>'
run_case "302 Contact 127x0x0x2 ('.' is literal)" 1 invite_refused_302.xml -key peer_uri sip:127.0.0.2:5060 -- "${UK[@]}"
UK=(-key code 302 -key trying yes -key ra_name X-A -key ra_val 1
    -key reason_name Contact -key reason_val '<sip:127.0.0.3:5060>;q=0.9'
    -key contact_name Contact -key contact_val '<sip:127.0.0.2:5060>;q=0.5')
run_case "302, peer in the 2nd Contact line" 0 invite_refused_302.xml -key peer_uri sip:127.0.0.2:5060 -- "${UK[@]}"
r302 -key contact_name m -key contact_val '<sip:127.0.0.2:5060>'
run_case "302, compact form m: <sip:127.0.0.2:5060>" 0 invite_refused_302.xml -key peer_uri sip:127.0.0.2:5060 -- "${UK[@]}"
r302 -key contact_name X-No-Contact -key contact_val '<sip:127.0.0.2:5060>'
run_case "302 without Contact (X-No-Contact: has it)" 1 invite_refused_302.xml -key peer_uri sip:127.0.0.2:5060 -- "${UK[@]}"
UK=(-key code 302 -key trying yes -key ra_name X-A -key ra_val 1
    -key reason_name X-Peer -key reason_val '<sip:127.0.0.2:5060>'
    -key contact_name Contact -key contact_val '<sip:127.0.0.3:5060>')
run_case "302, peer only in another header" 1 invite_refused_302.xml -key peer_uri sip:127.0.0.2:5060 -- "${UK[@]}"
run_case "client run without -key peer_uri" 1 invite_refused_302.xml -- "${UK[@]}"
run_case "503 instead of 302" 1 invite_refused_302.xml -key peer_uri sip:127.0.0.2:5060 -- "${uas_keys_503[@]}"

# ---- probes documenting SIPp 3.6.1 behaviour --------------------------------
run_case "503 + Retry-After 30; regexp has [retry_after]" 1 selftest_key_in_regexp.xml -key retry_after 30 -- "${uas_keys_503[@]}"
run_case "503; impossible check_it inside a <nop>" 0 selftest_nop_check_ignored.xml -- "${uas_keys_503[@]}"

# ---- no responder at all (20 s each) ----------------------------------------
if [ "${SELFTEST_SLOW:-0}" = 1 ]; then
    run_case "nobody listening (global timeout)" 255 options_200.xml -- NOUAS
    run_case "nobody listening (global timeout)" 255 invite_refused_503.xml -key retry_after 30 -- NOUAS
fi

selftest_finish
