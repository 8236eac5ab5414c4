#!/usr/bin/env bash
# selftest_3pcc.sh - prove the RFC 3725 flow IV scenarios (agent-originated
# call by third-party call control) with no edge in between:
#   * phone_3pcc.xml against selftest_3pcc_edge.xml, which plays sip-edge's
#     side of the phone leg (offer1 without media, re-INVITE with the
#     destination's offer, BYE);
#   * dest_answer.xml and dest_busy.xml against selftest_3pcc_edge_dest.xml,
#     which plays sip-edge's side of the destination leg (INVITE without
#     SDP via the outbound proxy route, ACK with the phone's answer, the
#     destination's BYE).
# Right pairs must pass (exit 0); deliberately broken copies ("mutants") of
# either side and wrong pairs must make the scenario under test fail.
#
# Usage:  tests/e2e/sipp/selftest_3pcc.sh              # 46 cases, about 50 s
#         SELFTEST_SLOW=1 tests/e2e/sipp/selftest_3pcc.sh
#                                   # + 1 case ending in a 15 s -timeout
#         SELFTEST_OUT=/tmp/x ...   # where logs and mutants go
#
# All loopback, one case at a time, every sipp -m 1 with -timeout <= 15s
# and -timeout_error; every port in 16170-16199 (SIP -p, control -cp and
# RTP echo -mp, so that nothing lands on sipp's defaults 5060/6000/8888):
#   SIP   phone 16170, registrar/edge 16171, dest 16172, edge (dest leg)
#         16173, "other address" / dead remote 16174
#   -cp   phone 16175, registrar 16176, edge 16177, dest 16178, edge (dest
#         leg) 16179
#   -mp   registrar 16180, phone 16184, edge 16188, dest 16192, edge (dest
#         leg) 16196 (sipp binds -mp and -mp+2)
# Phone leg, per case (as selftest_nailed.sh):
#   1. selftest_registrar.xml on 127.0.0.1:16171 (background);
#   2. the phone on 127.0.0.1:16170 (background), remote 127.0.0.1:16171,
#      -sf and -oocsf = the phone file, -key dest answer|busy; it
#      REGISTERs, the registrar answers 200 and exits (-m 1), freeing 16171;
#   3. the edge (selftest_3pcc_edge.xml, -key dest ..., -key gap_ms MS) in
#      the foreground towards 127.0.0.1:16170, bound on 127.0.0.1:16171
#      (where the phone registered) or 16174 ("another address");
#   4. the phone's exit code is collected (killed by PID if it outlives
#      its -timeout by 5 s, reported as "killed").
# Destination leg, per case:
#   1. the destination (dest_answer.xml / dest_busy.xml) on 127.0.0.1:16172
#      (background), remote 127.0.0.1:16173 (16174, where nobody listens,
#      in one case: responses and its BYE must go to the INVITE's source);
#   2. the edge's destination leg (selftest_3pcc_edge_dest.xml) in the
#      foreground from 127.0.0.1:16173 towards 127.0.0.1:16172;
#   3. the destination's exit code is collected (killed by PID as above).
# Mutants are copies of a scenario with one perl substitution, written to
# the log folder; the script stops if a substitution changed nothing.
# Exit status: 0 when every exit code is the expected one.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=selftest_lib.sh
. "$HERE/selftest_lib.sh"
selftest_init sipp-3pcc
PHONE_PORT=16170
REG_PORT=16171
DEST_PORT=16172
EDGE_DEST_PORT=16173
OTHER_PORT=16174
DN=1001
DIGITS=4930123456
# run_phone_case settings (see selftest_lib.sh; no stray sender here)
PEER=edge
CASE_TMO=15s
FREE_PORTS=("$PHONE_PORT" "$REG_PORT" "$OTHER_PORT")
REG_OPTS=(-cp 16176 -mp 16180)
# Each side sends s=<its token> and expects the other's (README.md, "What
# the scenarios check in SDP"): the phone's answers carry phone-3pcc1, the
# destination's offer (and the edge stand-in's offer2, which stands for it)
# dest-3pcc1; the edge's own offer1 has no token.
PHONE_OPTS=(-cp 16175 -mp 16184 -key sdp_token phone-3pcc1 -key sdp_expect s=dest-3pcc1)
PEER_OPTS=(-cp 16177 -mp 16188 -key sdp_token dest-3pcc1 -key sdp_expect s=phone-3pcc1)
DEST_KEYS=(-key sdp_token dest-3pcc1 -key sdp_expect s=phone-3pcc1)
EDGE_DEST_KEYS=(-key sdp_token phone-3pcc1 -key sdp_expect s=dest-3pcc1)
ROW_WIDTHS=(28 30 50)
PHONE_NOTE=first

# first_failure <error file>: the first failed check, shortened.
first_failure() {
    perl -0ne '
        if (/(Failed regexp match|Regexp matched but should not).*?with regexp .([^\n]{0,44})/s) { print "$1: $2"; }
        elsif (/(strcmp [^\n]*? with check_it)/) { print $1; }
        elsif (/(Unsupported keyword [^\n]*?) in/) { print $1; }
        elsif (/(timed out)/) { print $1; }
    ' "$1" 2>/dev/null
}

# run_phone <label> <phone xml|path> <expect phone> <edge xml|path|NOEDGE> <expect edge> \
#           [phone args...] -- [edge args...]
# Options in the environment of the call: TMO (default 15s), EDGE_PORT
# (default REG_PORT), REG_XML (registrar file), NO_OOCSF=1.
run_phone() { run_phone_case "$@"; }

# run_dest <label> <dest xml|path> <expect dest> <edge xml|path> <expect edge> \
#          [dest args...] -- [edge args...]
# Options in the environment of the call: TMO (default 15s), DEST_REMOTE
# (the destination's remote port, default EDGE_DEST_PORT).
run_dest() {
    local label=$1 dxml=$2 dexp=$3 exml=$4 eexp=$5
    shift 5
    split_args "$@"
    local dargs=("${ARGS1[@]}") eargs=("${ARGS2[@]}")
    local tmo=${TMO:-15s} remote=${DEST_REMOTE:-$EDGE_DEST_PORT}
    local limit=$(( ${tmo%s} + 5 ))
    next_tag
    local tag=$TAG
    case $dxml in /*) ;; *) dxml=$HERE/$dxml ;; esac
    case $exml in /*) ;; *) exml=$HERE/$exml ;; esac

    local p
    for p in $DEST_PORT $EDGE_DEST_PORT $OTHER_PORT; do
        wait_udp_free "$p" || echo "warning: port $p still bound before case $tag" >&2
    done

    local dest_pid drc="-" erc="-"
    sipp_start "$tag" dest "$tmo" "127.0.0.1:$remote" -sf "$dxml" -p "$DEST_PORT" -cp 16178 -mp 16192 \
        -s "$DIGITS" "${DEST_KEYS[@]}" -- "${dargs[@]}"
    dest_pid=$SIPP_PID
    # (a destination whose scenario does not load exits at once: no warning)
    wait_udp_bound "$DEST_PORT" || ! kill -0 "$dest_pid" 2>/dev/null \
        || echo "warning: destination not bound on $DEST_PORT" >&2

    sipp_run "$tag" edge "$tmo" "127.0.0.1:$DEST_PORT" -sf "$exml" -p "$EDGE_DEST_PORT" -cp 16179 -mp 16196 \
        "${EDGE_DEST_KEYS[@]}" -- "${eargs[@]}"
    erc=$?
    wait_pid "$dest_pid" "$limit"
    drc=$WAIT_RC

    set_verdict "$dexp" "$drc" "$eexp" "$erc"
    # the destination's first failed check ("-" if none)
    local why
    why=$(first_failure "$OUT/$tag.dest.err")
    result_row "${ROW_WIDTHS[@]}" "$tag" "$dxml" "$exml" "$label" \
        dest "$dexp" "$drc" edge "$eexp" "$erc" "$VERDICT" "${why:--}"
}

E=selftest_3pcc_edge.xml
P=phone_3pcc.xml
ED=selftest_3pcc_edge_dest.xml
DA=dest_answer.xml
DB=dest_busy.xml

echo "logs: $OUT"
echo
echo "== phone leg: phone_3pcc.xml against the edge stand-in =="
printf '%s  %-28s %-30s %-50s %-50s %s\n' "#" "phone" "edge" "case" "exit codes (expected / got)" "phone report"

# ---- right dialogs ----------------------------------------------------------------
run_phone "dest answers: offer1, re-INVITE, BYE, back to back" $P 0 $E 0 \
    -key dest answer -- -key dest answer -key gap_ms 0
run_phone "same, 300 ms between the steps" $P 0 $E 0 \
    -key dest answer -- -key dest answer -key gap_ms 300
run_phone "dest busy: offer1, then BYE, back to back" $P 0 $E 0 \
    -key dest busy -- -key dest busy -key gap_ms 0
EDGE_PORT=$OTHER_PORT run_phone "dest answers, INVITE from another address" $P 0 $E 0 \
    -key dest answer -- -key dest answer -key gap_ms 0

# ---- edge mutants: the phone must fail ----------------------------------------------
M=$(mutant $E edge_offer1_with_m.xml 's/(s=sipdrain-3pcc\n\s*c=IN IP4 0\.0\.0\.0\n\s*t=0 0\n)/${1}      m=audio 9 RTP\/AVP 0\n/')
run_phone "mutant edge: offer1 with an m= line" $P 1 "$M" 0 \
    -key dest answer -- -key dest answer -key gap_ms 0
M=$(mutant $E edge_offer1_origin_edge.xml 's/^(\s+)o=sipdrain 1713 1 (IN IP4 0\.0\.0\.0)$/${1}o=edge 1713 1 $2/m')
run_phone "mutant edge: offer1 o=edge (no o=sipdrain)" $P 1 "$M" 0 \
    -key dest answer -- -key dest answer -key gap_ms 0
M=$(mutant $E edge_offer1_not_sdp.xml 's/(Subject: 3pcc offer1\n\s*)Content-Type: application\/sdp/${1}Content-Type: text\/plain/')
run_phone "mutant edge: offer1 Content-Type text/plain" $P 1 "$M" 0 \
    -key dest answer -- -key dest answer -key gap_ms 0
M=$(mutant $E edge_offer1_no_c.xml 's/(s=sipdrain-3pcc\n)\s*c=IN IP4 0\.0\.0\.0\n/${1}/')
run_phone "mutant edge: offer1 without c=" $P 1 "$M" 0 \
    -key dest answer -- -key dest answer -key gap_ms 0
M=$(mutant $E edge_offer2_wrong_s.xml 's/^(\s+)s=\[sdp_token\]$/${1}s=dest-other/m')
run_phone "mutant edge: re-INVITE another token" $P 1 "$M" 0 \
    -key dest answer -- -key dest answer -key gap_ms 0
M=$(mutant $E edge_offer2_video.xml 's/(s=\[sdp_token\]\n(?:.*\n)*?\s*)m=audio/${1}m=video/')
run_phone "mutant edge: re-INVITE m=video (no m=audio)" $P 1 "$M" 0 \
    -key dest answer -- -key dest answer -key gap_ms 0
M=$(mutant $E edge_offer2_origin_dest.xml 's/^(\s+)o=sipdrain 1713 2 IN IP4 0\.0\.0\.0$/${1}o=dest 7406 1 IN IP4 [local_ip]/m')
run_phone "mutant edge: re-INVITE keeps o=dest (not rewritten)" $P 1 "$M" 0 \
    -key dest answer -- -key dest answer -key gap_ms 0
M=$(mutant $E edge_offer2_same_version.xml 's/^(\s+)o=sipdrain 1713 2 (IN IP4 0\.0\.0\.0)$/${1}o=sipdrain 1713 1 $2/m')
run_phone "mutant edge: re-INVITE o= version not +1 (1 again)" $P 1 "$M" 0 \
    -key dest answer -- -key dest answer -key gap_ms 0
M=$(mutant $E edge_offer2_version_3.xml 's/^(\s+)o=sipdrain 1713 2 (IN IP4 0\.0\.0\.0)$/${1}o=sipdrain 1713 3 $2/m')
run_phone "mutant edge: re-INVITE o= version +2" $P 1 "$M" 0 \
    -key dest answer -- -key dest answer -key gap_ms 0
M=$(mutant $E edge_offer2_other_session.xml 's/^(\s+)o=sipdrain 1713 2 (IN IP4 0\.0\.0\.0)$/${1}o=sipdrain 1714 2 $2/m')
run_phone "mutant edge: re-INVITE o= another session id" $P 1 "$M" 0 \
    -key dest answer -- -key dest answer -key gap_ms 0
M=$(mutant $E edge_offer2_other_from_tag.xml 's/\[last_From:\](\s*\[last_To:\]\s*\[last_Call-ID:\]\s*CSeq: \[cseq\] INVITE\s*Contact:[^\n]*\s*Max-Forwards: 70\s*Subject: 3pcc offer2)/From: "sipdrain edge" <sip:edge\@[local_ip]:[local_port]>;tag=another-dialog$1/')
run_phone "mutant edge: re-INVITE with another From tag" $P 1 "$M" 0 \
    -key dest answer -- -key dest answer -key gap_ms 0
M=$(mutant $E edge_offer2_cseq_1.xml 's/CSeq: \[cseq\] INVITE(\s*Contact:[^\n]*\s*Max-Forwards: 70\s*Subject: 3pcc offer2)/CSeq: 1 INVITE$1/')
run_phone "mutant edge: re-INVITE CSeq 1 (not higher)" $P 1 "$M" 0 \
    -key dest answer -- -key dest answer -key gap_ms 0

# ---- wrong order / wrong keys ---------------------------------------------------------
TMO=5s run_phone "BYE where the re-INVITE is due (edge: busy)" $P 1 $E 255 \
    -key dest answer -- -key dest busy -key gap_ms 0
TMO=5s run_phone "re-INVITE where the BYE is due (phone: busy)" $P 1 $E 255 \
    -key dest busy -- -key dest answer -key gap_ms 0
run_phone "phone run with -key dest maybe" $P 1 $E 0 \
    -key dest maybe -- -key dest answer -key gap_ms 0
M=$(mutant selftest_registrar.xml selftest_registrar_503.xml 's{SIP/2\.0 200 OK}{SIP/2.0 503 Service Unavailable}')
REG_XML=$M run_phone "registrar answers 503" $P 1 NOEDGE - \
    -key dest answer --
run_phone "phone run without -key dest" $P 1 NOEDGE - --

# ---- the edge's checks of the phone's answers (mutant phones) -------------------------
M=$(mutant $P phone_3pcc_hold_with_m.xml 's/(s=\[sdp_token\]\n\s*c=IN IP4 \[local_ip\]\n\s*t=0 0\n)(?!\s*m=)/${1}      m=audio [media_port] RTP\/AVP 0\n/')
run_phone "mutant phone answers offer1 with an m= line" "$M" 0 $E 1 \
    -key dest answer -- -key dest answer -key gap_ms 0
M=$(mutant $P phone_3pcc_hold_no_t.xml 's/(s=\[sdp_token\]\n\s*c=IN IP4 \[local_ip\]\n)\s*t=0 0\n(?!\s*m=)/${1}/')
run_phone "mutant phone answers offer1 without t=" "$M" 0 $E 1 \
    -key dest answer -- -key dest answer -key gap_ms 0
M=$(mutant $P phone_3pcc_wrong_s.xml 's/^(\s+)s=\[sdp_token\](\n\s*c=IN IP4 \[local_ip\]\n\s*t=0 0\n\s*m=audio)/${1}s=phone-other$2/m')
run_phone "mutant phone answers offer2 with another token" "$M" 0 $E 1 \
    -key dest answer -- -key dest answer -key gap_ms 0
M=$(mutant $P phone_3pcc_same_version.xml 's/^(\s+)o=phone 53655765 2 IN IP4/${1}o=phone 53655765 1 IN IP4/m')
run_phone "mutant phone: o= version does not grow" "$M" 0 $E 1 \
    -key dest answer -- -key dest answer -key gap_ms 0

echo
echo "== destination leg: dest_answer.xml / dest_busy.xml against the edge stand-in =="
printf '%s  %-28s %-30s %-50s %-50s %s\n' "#" "destination" "edge" "case" "exit codes (expected / got)" "destination's first failed check"

# ---- right calls --------------------------------------------------------------------
run_dest "answered, ACK with the phone's answer, dest BYE" $DA 0 $ED 0 \
    -key hold_ms 0 -- -s $DIGITS -key dest answer
run_dest "same, held 300 ms" $DA 0 $ED 0 \
    -key hold_ms 300 -- -s $DIGITS -key dest answer
DEST_REMOTE=$OTHER_PORT run_dest "same, dest's remote = a dead port" $DA 0 $ED 0 \
    -key hold_ms 0 -- -s $DIGITS -key dest answer
run_dest "busy: 486, ACK" $DB 0 $ED 0 \
    -- -s $DIGITS -key dest busy
# A real INVITE retransmission: the destination waits 1.2 s before its first
# answer, so the edge stand-in (retrans="500") sends the INVITE again after
# 0.5 s; SIPp absorbs the repeat, the call goes on.
M=$(mutant $DA dest_answer_slow.xml 's/(<\/recv>\n)/$1\n  <pause milliseconds="1200"\/>\n/')
run_dest "dest answers after 1.2 s: INVITE retransmitted" "$M" 0 $ED 0 \
    -key hold_ms 0 -- -s $DIGITS -key dest answer
M=$(mutant $DB dest_busy_slow.xml 's/(<\/recv>\n)/$1\n  <pause milliseconds="1200"\/>\n/')
run_dest "busy after 1.2 s: INVITE retransmitted" "$M" 0 $ED 0 \
    -- -s $DIGITS -key dest busy

# ---- edge mutants: the destination must fail ------------------------------------------
M=$(mutant $ED edge_dest_invite_sdp.xml 's/(Subject: 3pcc destination leg\n)(\s*)Content-Length: 0\n/${1}${2}Content-Type: application\/sdp\n${2}Content-Length: [len]\n\n${2}v=0\n${2}o=sipdrain 1713 1 IN IP4 0.0.0.0\n${2}s=sipdrain-3pcc\n${2}c=IN IP4 0.0.0.0\n${2}t=0 0\n/')
run_dest "mutant edge: INVITE with an SDP offer" $DA 1 "$M" 0 \
    -key hold_ms 0 -- -s $DIGITS -key dest answer
run_dest "busy, mutant edge: INVITE with an SDP offer" $DB 1 "$M" 0 \
    -- -s $DIGITS -key dest busy
M=$(mutant $ED edge_dest_no_route.xml 's/^(\s+)Route: <sip:\[remote_ip\]:\[remote_port\];lr>(\s+From:)/${1}X-No-Route: <sip:[remote_ip]:[remote_port];lr>$2/m')
run_dest "mutant edge: INVITE without Route (X-No-Route:)" $DA 1 "$M" 0 \
    -key hold_ms 0 -- -s $DIGITS -key dest answer
run_dest "busy, mutant edge: INVITE without Route" $DB 1 "$M" 0 \
    -- -s $DIGITS -key dest busy
M=$(mutant $ED edge_dest_route_no_lr.xml 's/^(\s+)Route: <sip:\[remote_ip\]:\[remote_port\];lr>(\s+From:)/${1}Route: <sip:[remote_ip]:[remote_port]>$2/m')
run_dest "mutant edge: Route without ;lr" $DA 1 "$M" 0 \
    -key hold_ms 0 -- -s $DIGITS -key dest answer
M=$(mutant $ED edge_dest_record_route.xml 's/^(\s+)Route: <sip:\[remote_ip\]:\[remote_port\];lr>(\s+From:)/${1}Record-Route: <sip:[remote_ip]:[remote_port];lr>$2/m')
run_dest "mutant edge: Record-Route ;lr instead of Route" $DA 1 "$M" 0 \
    -key hold_ms 0 -- -s $DIGITS -key dest answer
run_dest "edge dials 4930999999 (other digits)" $DA 1 $ED 0 \
    -key hold_ms 0 -- -s 4930999999 -key dest answer
M=$(mutant $ED edge_dest_ack_no_sdp.xml 's/(Subject: 3pcc answer relayed\n)(\s*)Content-Type: application\/sdp\n\s*Content-Length: \[len\]\n\n.*?\n(\s*\]\]>)/${1}${2}Content-Length: 0\n\n$3/s')
run_dest "mutant edge: ACK without the phone's answer" $DA 1 "$M" 0 \
    -key hold_ms 0 -- -s $DIGITS -key dest answer
M=$(mutant $ED edge_dest_ack_wrong_s.xml 's/^(\s+)s=\[sdp_token\]$/${1}s=phone-other/m')
run_dest "mutant edge: ACK body with another token" $DA 1 "$M" 0 \
    -key hold_ms 0 -- -s $DIGITS -key dest answer
M=$(mutant $ED edge_dest_ack_not_sdp.xml 's/(Subject: 3pcc answer relayed\n\s*)Content-Type: application\/sdp/${1}Content-Type: text\/plain/')
run_dest "mutant edge: ACK Content-Type text/plain" $DA 1 "$M" 0 \
    -key hold_ms 0 -- -s $DIGITS -key dest answer

# ---- wrong pairs / keys -----------------------------------------------------------------
run_dest "busy destination, edge expects an answer" $DB 0 $ED 1 \
    -- -s $DIGITS -key dest answer
run_dest "answering destination, edge expects busy" $DA 0 $ED 1 \
    -key hold_ms 0 -- -s $DIGITS -key dest busy
TMO=5s run_dest "dest_answer run without -key hold_ms" $DA 1 $ED 255 \
    -- -s $DIGITS -key dest answer

# ---- the edge's checks of the destination's answer (mutant destinations) ---------------
M=$(mutant $DA dest_answer_wrong_s.xml 's/^(\s+)s=\[sdp_token\]$/${1}s=dest-other/mg')
run_dest "mutant dest offers another token" "$M" 0 $ED 1 \
    -key hold_ms 0 -- -s $DIGITS -key dest answer
M=$(mutant $DA dest_answer_no_media.xml 's/^\s+m=audio \[media_port\] RTP\/AVP 0\n//mg')
run_dest "mutant dest offers no m= line" "$M" 0 $ED 1 \
    -key hold_ms 0 -- -s $DIGITS -key dest answer

# ---- slow: a case that ends in the 15 s -timeout ---------------------------------------
if [ "${SELFTEST_SLOW:-0}" = 1 ]; then
    NO_OOCSF=1 run_phone "phone run without -oocsf: INVITE discarded" $P 255 $E 255 \
        -key dest answer -- -key dest answer -key gap_ms 0
fi

selftest_finish
