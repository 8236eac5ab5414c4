#!/usr/bin/env bash
# selftest_nailed.sh - prove phone_nailed.xml (agent phone with a nailed-up
# connection) against selftest_nailed_edge.xml, which plays sip-edge's side
# of the dialog, with no edge in between. Right dialogs must pass (exit 0);
# deviations (missing a=inactive, missing s=gateway-offer, BYE without
# Reason, foreign tags, CSeq not higher, wrong order, wrong number of
# customer calls) must make the phone exit non-zero.
#
# Usage:  tests/e2e/sipp/selftest_nailed.sh              # 20 cases, about 30 s
#         SELFTEST_SLOW=1 tests/e2e/sipp/selftest_nailed.sh
#                                   # + 1 case ending in a 15 s -timeout
#         SELFTEST_OUT=/tmp/x ...   # where logs and mutants go
#
# Per case (all loopback, one case at a time, every sipp -m 1 with
# -timeout <= 15s and -timeout_error, each with its own -cp 18160-18163):
#   1. selftest_registrar.xml on 127.0.0.1:16161 (background);
#   2. the phone on 127.0.0.1:16160 (background), remote 127.0.0.1:16161,
#      -sf and -oocsf = the phone file, -key calls N; it REGISTERs, the
#      registrar answers 200 and exits (-m 1), freeing 16161;
#   3. optionally a stray sender (options_200.xml from 16163, unanswered);
#   4. the edge (selftest_nailed_edge.xml, -key calls N -key gap_ms MS) in
#      the foreground towards 127.0.0.1:16160, bound on 127.0.0.1:16161 -
#      the registrar's address, as the edge's INVITE comes from where the
#      phone registered - or on 16162 ("other address");
#   5. the phone's exit code is collected (it ends by itself; killed by PID
#      if it outlives its -timeout by 5 s, reported as "killed").
# Mutants are copies of a scenario with one perl substitution, written to
# the log folder; the script stops if a substitution changed nothing.
# Exit status: 0 when every phone and edge exit code is the expected one.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${SELFTEST_OUT:-$(mktemp -d /tmp/sipp-nailed.XXXXXX)}
mkdir -p "$OUT"
SIPP=${SIPP:-sipp}
PHONE_PORT=16160
REG_PORT=16161
OTHER_PORT=16162
STRAY_PORT=16163
DN=1001
FAILED=0
N=0
COMMON=(-m 1 -i 127.0.0.1 -t u1 -timeout_error -nostdin -trace_err -trace_msg -trace_logs)

wait_udp_bound() { # port
    local i
    for i in $(seq 1 50); do
        if ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.1
    done
    return 1
}

wait_udp_free() { # port
    local i
    for i in $(seq 1 50); do
        if ! ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.1
    done
    return 1
}

# wait_pid <pid> <seconds>: wait for our child, kill it by PID when it takes
# longer. Sets WAIT_RC to its exit code or "killed" (no subshell: only this
# shell can reap its children).
WAIT_RC=-
wait_pid() {
    local pid=$1 limit=$2 i
    for i in $(seq 1 $((limit * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        WAIT_RC=killed
    else
        wait "$pid"
        WAIT_RC=$?
    fi
}

# mutant <src file in HERE> <name> <perl -0pe expression>: prints the path.
mutant() {
    local src=$HERE/$1 dst=$OUT/$2
    perl -0pe "$3" "$src" >"$dst"
    if cmp -s "$src" "$dst"; then
        echo "selftest: mutant $2 is identical to $1 (substitution failed)" >&2
        exit 2
    fi
    echo "$dst"
}

# run_case <label> <phone xml|path> <expect phone> <edge xml|path|NOEDGE> <expect edge> \
#          [phone args...] -- [edge args...]
# Options in the environment of the call: TMO (default 15s), EDGE_PORT
# (default REG_PORT), REG_XML (registrar file, default selftest_registrar.xml),
# STRAY=1 (send a stray OPTIONS to the phone before the edge's INVITE),
# NO_OOCSF=1 (run the phone without -oocsf).
run_case() {
    local label=$1 pxml=$2 pexp=$3 exml=$4 eexp=$5
    shift 5
    local pargs=() eargs=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do pargs+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    eargs=("$@")
    local tmo=${TMO:-15s} edge_port=${EDGE_PORT:-$REG_PORT} reg_xml=${REG_XML:-$HERE/selftest_registrar.xml}
    local limit=$(( ${tmo%s} + 5 ))
    N=$((N + 1))
    local tag
    tag=$(printf '%02d' "$N")
    case $pxml in /*) ;; *) pxml=$HERE/$pxml ;; esac
    case $exml in /*|NOEDGE) ;; *) exml=$HERE/$exml ;; esac

    local p
    for p in $PHONE_PORT $REG_PORT $OTHER_PORT $STRAY_PORT; do
        wait_udp_free "$p" || echo "warning: port $p still bound before case $tag" >&2
    done

    local reg_pid="" phone_pid="" prc="-" erc="-" rrc="-"
    "$SIPP" -sf "$reg_xml" -p "$REG_PORT" -cp 18161 "${COMMON[@]}" -timeout "$tmo" \
        -error_file "$OUT/$tag.reg.err" -message_file "$OUT/$tag.reg.msg" \
        -log_file "$OUT/$tag.reg.log" >"$OUT/$tag.reg.out" 2>&1 </dev/null &
    reg_pid=$!
    wait_udp_bound "$REG_PORT" || echo "warning: registrar not bound on $REG_PORT" >&2

    local ooc=(-oocsf "$pxml")
    [ "${NO_OOCSF:-0}" = 1 ] && ooc=()
    "$SIPP" "127.0.0.1:$REG_PORT" -sf "$pxml" "${ooc[@]}" -p "$PHONE_PORT" -cp 18160 \
        -s "$DN" "${COMMON[@]}" -timeout "$tmo" \
        -error_file "$OUT/$tag.phone.err" -message_file "$OUT/$tag.phone.msg" \
        -log_file "$OUT/$tag.phone.log" "${pargs[@]}" >"$OUT/$tag.phone.out" 2>&1 </dev/null &
    phone_pid=$!
    # The registrar ends after its one answer; if the phone is gone (e.g. its
    # scenario did not load) or nothing comes, it is killed by PID.
    local i
    for i in $(seq 1 $((limit * 10))); do
        kill -0 "$reg_pid" 2>/dev/null || break
        ! kill -0 "$phone_pid" 2>/dev/null && break
        sleep 0.1
    done
    wait_pid "$reg_pid" 1
    rrc=$WAIT_RC

    if [ "${STRAY:-0}" = 1 ]; then
        # An OPTIONS no call knows: the phone must ignore it (no answer), so
        # this sender ends in its own -timeout (255) after 2 s.
        "$SIPP" "127.0.0.1:$PHONE_PORT" -sf "$HERE/options_200.xml" -p "$STRAY_PORT" -cp 18163 \
            -s "$DN" "${COMMON[@]}" -timeout 2s \
            -error_file "$OUT/$tag.stray.err" -message_file "$OUT/$tag.stray.msg" \
            -log_file "$OUT/$tag.stray.log" >"$OUT/$tag.stray.out" 2>&1 </dev/null
        echo "stray OPTIONS sender exit $?" >"$OUT/$tag.stray.rc"
    fi

    if [ "$exml" != NOEDGE ]; then
        wait_udp_free "$edge_port" || echo "warning: port $edge_port still bound" >&2
        "$SIPP" "127.0.0.1:$PHONE_PORT" -sf "$exml" -p "$edge_port" -cp 18162 \
            -s "$DN" "${COMMON[@]}" -timeout "$tmo" \
            -error_file "$OUT/$tag.edge.err" -message_file "$OUT/$tag.edge.msg" \
            -log_file "$OUT/$tag.edge.log" "${eargs[@]}" >"$OUT/$tag.edge.out" 2>&1 </dev/null
        erc=$?
    fi
    wait_pid "$phone_pid" "$limit"
    prc=$WAIT_RC

    local verdict=ok
    [ "$pexp" = "-" ] || [ "$prc" = "$pexp" ] || verdict=MISMATCH
    [ "$eexp" = "-" ] || [ "$erc" = "$eexp" ] || verdict=MISMATCH
    [ "$verdict" = ok ] || FAILED=1
    # how far the phone got (its report line; "-" if it never reported)
    local trace
    trace=$(sed -n 's/^phone report: \(trace=[^ ]*\).*/\1/p' "$OUT/$tag.phone.log" 2>/dev/null | head -n 1)
    printf '%s  %-31s %-30s %-52s phone %-3s got %-6s edge %-3s got %-4s %-8s %s\n' \
        "$tag" "$(basename "$pxml")" "$(basename "$exml")" "$label" \
        "$pexp" "$prc" "$eexp" "$erc" "$verdict" "${trace:--}"
}

E=selftest_nailed_edge.xml
P=phone_nailed.xml

echo "logs: $OUT"
printf '%s  %-31s %-30s %-52s %-50s %s\n' "#" "phone" "edge" "case" "exit codes (expected / got)" "phone report"

# ---- right dialogs ----------------------------------------------------------------
run_case "park, 1 customer call, BYE+Reason, back to back" $P 0 $E 0 \
    -key calls 1 -- -key calls 1 -key gap_ms 0
run_case "same, 300 ms between the steps" $P 0 $E 0 \
    -key calls 1 -- -key calls 1 -key gap_ms 300
EDGE_PORT=$OTHER_PORT run_case "same, INVITE from another address" $P 0 $E 0 \
    -key calls 1 -- -key calls 1 -key gap_ms 0
STRAY=1 run_case "same, stray OPTIONS first (ignored)" $P 0 $E 0 \
    -key calls 1 -- -key calls 1 -key gap_ms 0
run_case "2 customer calls (loop)" $P 0 $E 0 \
    -key calls 2 -- -key calls 2 -key gap_ms 0
run_case "0 customer calls: park, then BYE" $P 0 $E 0 \
    -key calls 0 -- -key calls 0 -key gap_ms 0
M=$(mutant $E edge_reason_lower_case.xml 's/^(\s+)Reason: /${1}reason: /m')
run_case "mutant edge: lower-case reason: header" $P 0 "$M" 0 \
    -key calls 1 -- -key calls 1 -key gap_ms 0

# ---- deviations: the phone must fail ------------------------------------------------
M=$(mutant $E edge_bye_no_reason.xml 's/^(\s+)Reason: /${1}X-No-Reason: /m')
run_case "mutant edge: BYE without Reason (X-No-Reason:)" $P 1 "$M" 0 \
    -key calls 1 -- -key calls 1 -key gap_ms 0
M=$(mutant $E edge_invite_sendrecv.xml 's/(s=edge-park\n.*?)a=inactive/${1}a=sendrecv/s')
run_case "mutant edge: first INVITE a=sendrecv" $P 1 "$M" 0 \
    -key calls 1 -- -key calls 1 -key gap_ms 0
M=$(mutant $E edge_repark_sendrecv.xml 's/(s=edge-repark\n.*?)a=inactive/${1}a=sendrecv/s')
run_case "mutant edge: park re-INVITE a=sendrecv" $P 1 "$M" 0 \
    -key calls 1 -- -key calls 1 -key gap_ms 0
M=$(mutant $E edge_offer_wrong_s.xml 's/^(\s+)s=gateway-offer$/${1}s=gateway-other/m')
run_case "mutant edge: customer re-INVITE s=gateway-other" $P 1 "$M" 0 \
    -key calls 1 -- -key calls 1 -key gap_ms 0
M=$(mutant $E edge_offer_other_from_tag.xml 's/\[last_From:\](\s*\[last_To:\]\s*\[last_Call-ID:\]\s*CSeq: \[cseq\] INVITE\s*Contact:[^\n]*\s*Max-Forwards: 70\s*Subject: customer call)/From: "sipdrain edge" <sip:edge\@[local_ip]:[local_port]>;tag=another-dialog$1/')
run_case "mutant edge: re-INVITE with another From tag" $P 1 "$M" 0 \
    -key calls 1 -- -key calls 1 -key gap_ms 0
M=$(mutant $E edge_offer_cseq_1.xml 's/CSeq: \[cseq\] INVITE(\s*Contact:[^\n]*\s*Max-Forwards: 70\s*Subject: customer call)/CSeq: 1 INVITE$1/')
run_case "mutant edge: customer re-INVITE CSeq 1 (not higher)" $P 1 "$M" 0 \
    -key calls 1 -- -key calls 1 -key gap_ms 0
M=$(mutant $E edge_skip_repark.xml 's/<pause variable="gap"\/>(\s*<!-- 3\.)/<nop next="bye"\/>$1/')
TMO=5s run_case "mutant edge: BYE instead of park re-INVITE" $P 1 "$M" 255 \
    -key calls 1 -- -key calls 1 -key gap_ms 0
TMO=5s run_case "BYE where a customer call is due (edge calls 0)" $P 1 $E 255 \
    -key calls 1 -- -key calls 0 -key gap_ms 0
TMO=5s run_case "re-INVITE where the BYE is due (edge calls 2)" $P 1 $E 255 \
    -key calls 1 -- -key calls 2 -key gap_ms 0
M=$(mutant selftest_registrar.xml selftest_registrar_503.xml 's{SIP/2\.0 200 OK}{SIP/2.0 503 Service Unavailable}')
REG_XML=$M run_case "registrar answers 503" $P 1 NOEDGE - \
    -key calls 1 --
run_case "phone run without -key calls" $P 1 NOEDGE - --

# ---- the edge's checks of the phone's answers (mutant phones) -------------------------
M=$(mutant $P phone_nailed_park_sendrecv.xml 's/(s=phone-park\n.*?)a=inactive/${1}a=sendrecv/s')
run_case "mutant phone answers the park a=sendrecv" "$M" 0 $E 1 \
    -key calls 1 -- -key calls 1 -key gap_ms 0
M=$(mutant $P phone_nailed_wrong_s.xml 's/^(\s+)s=phone-answer$/${1}s=phone-other/m')
run_case "mutant phone answers the customer s=phone-other" "$M" 0 $E 1 \
    -key calls 1 -- -key calls 1 -key gap_ms 0

# ---- slow: a case that ends in the 15 s -timeout ---------------------------------------
if [ "${SELFTEST_SLOW:-0}" = 1 ]; then
    NO_OOCSF=1 run_case "phone run without -oocsf: INVITE discarded" $P 255 $E 255 \
        -key calls 1 -- -key calls 1 -key gap_ms 0
fi

echo
if [ "$FAILED" = 0 ]; then
    echo "selftest: all $N cases as expected"
else
    echo "selftest: MISMATCHES above"
fi
exit "$FAILED"
