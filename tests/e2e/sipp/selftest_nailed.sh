#!/usr/bin/env bash
# selftest_nailed.sh - prove phone_nailed.xml (agent phone with a nailed-up
# connection) against selftest_nailed_edge.xml, which plays sip-edge's side
# of the dialog, with no edge in between. Right dialogs must pass (exit 0);
# deviations (missing a=inactive, another SDP token, an invalid SDP, BYE without
# Reason, foreign tags, CSeq not higher, wrong order, wrong number of
# customer calls) must make the phone exit non-zero.
#
# Usage:  tests/e2e/sipp/selftest_nailed.sh              # 22 cases, about 35 s
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
# shellcheck source-path=SCRIPTDIR source=selftest_lib.sh
. "$HERE/selftest_lib.sh"
selftest_init sipp-nailed
PHONE_PORT=16160
REG_PORT=16161
OTHER_PORT=16162
STRAY_PORT=16163
DN=1001
# run_phone_case settings (see selftest_lib.sh)
PEER=edge
CASE_TMO=15s
FREE_PORTS=("$PHONE_PORT" "$REG_PORT" "$OTHER_PORT" "$STRAY_PORT")
REG_OPTS=(-cp 18161)
# Each side sends s=<its token> and expects the other's (README.md, "What
# the scenarios check in SDP"); the edge stand-in's park offers are its own.
PHONE_OPTS=(-cp 18160 -key sdp_token phone-n41l -key sdp_expect s=gw-n41l)
PEER_OPTS=(-cp 18162 -key sdp_token gw-n41l -key sdp_expect s=phone-n41l)
STRAY_OPTS=(-cp 18163)
ROW_WIDTHS=(31 30 52)
PHONE_NOTE=first

# run_case <label> <phone xml|path> <expect phone> <edge xml|path|NOEDGE> <expect edge> \
#          [phone args...] -- [edge args...]
# Options in the environment of the call: TMO (default 15s), EDGE_PORT
# (default REG_PORT), REG_XML (registrar file, default selftest_registrar.xml),
# STRAY=1 (send a stray OPTIONS to the phone before the edge's INVITE),
# NO_OOCSF=1 (run the phone without -oocsf). Prints the phone's first
# report line.
run_case() { run_phone_case "$@"; }

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
M=$(mutant $E edge_park_no_c.xml 's/(s=edge-park\n)\s*c=IN IP4 [^\n]*\n/${1}/')
run_case "mutant edge: park INVITE SDP without c=" $P 1 "$M" 0 \
    -key calls 1 -- -key calls 1 -key gap_ms 0
M=$(mutant $E edge_offer_wrong_s.xml 's/^(\s+)s=\[sdp_token\]$/${1}s=gw-other/m')
run_case "mutant edge: customer re-INVITE another token" $P 1 "$M" 0 \
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
M=$(mutant $P phone_nailed_park_sendrecv.xml 's/(s=\[sdp_token\]\n.*?)a=inactive/${1}a=sendrecv/s')
run_case "mutant phone answers the park a=sendrecv" "$M" 0 $E 1 \
    -key calls 1 -- -key calls 1 -key gap_ms 0
M=$(mutant $P phone_nailed_wrong_s.xml 's/^(\s+)s=\[sdp_token\](\n(?:\s+[ctm]=[^\n]*\n|\s+a=rtpmap[^\n]*\n)*\s+a=sendrecv)/${1}s=phone-other$2/m')
run_case "mutant phone answers the customer another token" "$M" 0 $E 1 \
    -key calls 1 -- -key calls 1 -key gap_ms 0
M=$(mutant $P phone_nailed_park_no_t.xml 's/(s=\[sdp_token\]\n(?:\s+c=[^\n]*\n))\s+t=0 0\n/${1}/')
run_case "mutant phone answers the park without t=" "$M" 0 $E 1 \
    -key calls 1 -- -key calls 1 -key gap_ms 0

# ---- slow: a case that ends in the 15 s -timeout ---------------------------------------
if [ "${SELFTEST_SLOW:-0}" = 1 ]; then
    NO_OOCSF=1 run_case "phone run without -oocsf: INVITE discarded" $P 255 $E 255 \
        -key calls 1 -- -key calls 1 -key gap_ms 0
fi

selftest_finish
