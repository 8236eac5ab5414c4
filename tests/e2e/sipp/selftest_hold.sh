#!/usr/bin/env bash
# selftest_hold.sh - prove the hold / DTMF / drain-cut call scenarios
# (phone_hold.xml, gateway_hold.xml, gateway_call_cut.xml) against each
# other and against phone_answer_hangup.xml, with no sip-edge in between:
# right pairs must pass (exit 0); wrong answers, wrong pairs and
# deliberately broken copies ("mutants") must not. Same layout as
# selftest_calls.sh, other ports.
#
# Usage:  tests/e2e/sipp/selftest_hold.sh             # 27 cases, about 45 s
#         SELFTEST_OUT=/tmp/x ...   # where logs and mutants go
#
# Per case (all loopback, one case at a time, every sipp -m 1 with
# -timeout <= 20s and -timeout_error; ports 16200-16239 only: SIP -p
# 16200-16203, control -cp 16210-16213, media -mp 16220/16224/16228/16232):
#   1. selftest_registrar.xml on 127.0.0.1:16201 (background);
#   2. the phone on 127.0.0.1:16200 (background), remote 127.0.0.1:16201,
#      -sf and -oocsf = the phone file; it REGISTERs, the registrar answers
#      200 and exits (-m 1), freeing 16201;
#   3. the gateway in the foreground towards 127.0.0.1:16200, bound on
#      127.0.0.1:16201 - the registrar's address, as the edge's INVITE comes
#      from where the phone registered - or on 16202 ("other address");
#   4. the phone's exit code is collected (it ends by itself; killed by PID
#      if it outlives its -timeout by 5 s, reported as "killed").
# Mutants are copies of a scenario with one perl substitution, written to
# the log folder; the script stops if a substitution changed nothing.
# The phone's "phone report: trace=..." log line is printed per case.
# Exit status: 0 when every phone and gateway exit code is the expected one.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=selftest_lib.sh
. "$HERE/selftest_lib.sh"
selftest_init sipp-hold
PHONE_PORT=16200
REG_PORT=16201
OTHER_PORT=16202
STRAY_PORT=16203
MP_PHONE=16220
MP_REG=16224
MP_GW=16228
MP_STRAY=16232
DN=1001
# run_phone_case settings (see selftest_lib.sh)
PEER=gw
CASE_TMO=20s
FREE_PORTS=("$PHONE_PORT" "$REG_PORT" "$OTHER_PORT" "$STRAY_PORT" "$MP_PHONE" "$MP_REG" "$MP_GW" "$MP_STRAY")
REG_OPTS=(-cp 16211 -mp "$MP_REG")
# Each side sends s=<its token> and expects the other's (README.md, "What
# the scenarios check in SDP").
PHONE_OPTS=(-cp 16210 -mp "$MP_PHONE" -key sdp_token phone-h01d -key sdp_expect s=gw-h01d)
PEER_OPTS=(-cp 16212 -mp "$MP_GW" -key sdp_token gw-h01d -key sdp_expect s=phone-h01d)
STRAY_OPTS=(-cp 16213 -mp "$MP_STRAY")
ROW_WIDTHS=(32 30 50)
PHONE_NOTE=last

# run_case <label> <phone xml|path|NOPHONE> <expect phone> <gateway xml|path|NOGW> <expect gw> \
#          [phone args...] -- [gateway args...]
# Options in the environment of the call: TMO (default 20s), GW_PORT
# (default REG_PORT), REG_XML (registrar file, default selftest_registrar.xml),
# STRAY=1 (send a stray OPTIONS to the phone before the call), NO_OOCSF=1
# (run the phone without -oocsf). Prints the phone's last report line.
run_case() { run_phone_case "$@"; }

echo "logs: $OUT"
printf '%s  %-32s %-30s %-50s %-48s %s\n' "#" "phone" "gateway" "case" "exit codes (expected / got)" "phone report"

# ---- right pairs --------------------------------------------------------------
run_case "held 500 ms after answer, INFO, gateway hangs up" phone_hold.xml 0 gateway_hold.xml 0 \
    -- -key hold_ms 500
run_case "same, hold re-INVITE right after the ACK" phone_hold.xml 0 gateway_hold.xml 0 \
    -- -key hold_ms 0
GW_PORT=$OTHER_PORT run_case "same, INVITE from another address" phone_hold.xml 0 gateway_hold.xml 0 \
    -- -key hold_ms 0
STRAY=1 run_case "same, stray OPTIONS first (ignored)" phone_hold.xml 0 gateway_hold.xml 0 \
    -- -key hold_ms 100
REASON_OK='s{^(\s+)CSeq: 1 BYE$}{${1}CSeq: 1 BYE\n${1}Reason: SIP;cause=503;text="site drain deadline"}m'
M=$(mutant phone_answer_hangup.xml phone_hangup_reason.xml "$REASON_OK")
run_case "mutant phone BYE + Reason cause=503 deadline" "$M" 0 gateway_call_cut.xml 0 \
    -key hold_ms 300 --
M=$(mutant phone_answer_hangup.xml phone_hangup_reason_lc.xml \
    's{^(\s+)CSeq: 1 BYE$}{${1}CSeq: 1 BYE\n${1}X-Info: none\n${1}reason: SIP;text="Drain DEADLINE";cause = 503}m')
run_case "mutant: lower-case reason:, text before cause" "$M" 0 gateway_call_cut.xml 0 \
    -key hold_ms 0 --
M=$(mutant phone_answer_hangup.xml phone_hangup_two_reasons.xml \
    's{^(\s+)CSeq: 1 BYE$}{${1}CSeq: 1 BYE\n${1}Reason: Q.850;cause=16\n${1}Reason: SIP;cause=503;text="site drain deadline"}m')
run_case "mutant: Q.850 Reason first, the SIP one second" "$M" 0 gateway_call_cut.xml 0 \
    -key hold_ms 0 --

# ---- gateway_call_cut.xml: BYEs that must fail it ---------------------------------
run_case "BYE without Reason (phone_answer_hangup)" phone_answer_hangup.xml 0 gateway_call_cut.xml 1 \
    -key hold_ms 0 --
M=$(mutant phone_answer_hangup.xml phone_hangup_reason_500.xml \
    's{^(\s+)CSeq: 1 BYE$}{${1}CSeq: 1 BYE\n${1}Reason: SIP;cause=500;text="site drain deadline"}m')
run_case "mutant phone BYE Reason cause=500" "$M" 0 gateway_call_cut.xml 1 \
    -key hold_ms 0 --
M=$(mutant phone_answer_hangup.xml phone_hangup_reason_5030.xml \
    's{^(\s+)CSeq: 1 BYE$}{${1}CSeq: 1 BYE\n${1}Reason: SIP;cause=5030;text="site drain deadline"}m')
run_case "mutant phone BYE Reason cause=5030" "$M" 0 gateway_call_cut.xml 1 \
    -key hold_ms 0 --
M=$(mutant phone_answer_hangup.xml phone_hangup_reason_draining.xml \
    's{^(\s+)CSeq: 1 BYE$}{${1}CSeq: 1 BYE\n${1}Reason: SIP;cause=503;text="site draining"}m')
run_case "mutant phone BYE Reason text without deadline" "$M" 0 gateway_call_cut.xml 1 \
    -key hold_ms 0 --
M=$(mutant phone_answer_hangup.xml phone_hangup_x_reason.xml \
    's{^(\s+)CSeq: 1 BYE$}{${1}CSeq: 1 BYE\n${1}X-Reason: SIP;cause=503;text="site drain deadline"}m')
run_case "mutant phone BYE X-Reason: (not Reason:)" "$M" 0 gateway_call_cut.xml 1 \
    -key hold_ms 0 --
M=$(mutant phone_answer_hangup.xml phone_hangup_split_reason.xml \
    's{^(\s+)CSeq: 1 BYE$}{${1}CSeq: 1 BYE\n${1}Reason: SIP;cause=503\n${1}X-Note: deadline}m')
run_case "mutant: cause=503 and deadline on different lines" "$M" 0 gateway_call_cut.xml 1 \
    -key hold_ms 0 --

# ---- gateway_hold.xml: phone answers that must fail it ----------------------------
M=$(mutant phone_hold.xml phone_hold_answer_sendrecv.xml 's/^(\s+)a=recvonly$/${1}a=sendrecv/m')
run_case "mutant phone answers the hold a=sendrecv" "$M" 0 gateway_hold.xml 1 \
    -- -key hold_ms 0
M=$(mutant phone_hold.xml phone_hold_two_dirs.xml 's/^(\s+)a=recvonly$/${1}a=recvonly\n${1}a=sendrecv/m')
run_case "mutant phone answers the hold recvonly+sendrecv" "$M" 0 gateway_hold.xml 1 \
    -- -key hold_ms 0
M=$(mutant phone_hold.xml phone_hold_answer_token.xml 's/^(\s+o=phone 53655765 2353687638 IN IP4 \[local_ip\]\n\s+)s=\[sdp_token\]$/${1}s=phone-other/m')
run_case "mutant phone answers the hold with another token" "$M" 0 gateway_hold.xml 1 \
    -- -key hold_ms 0
M=$(mutant phone_hold.xml phone_hold_same_version.xml 's/^(\s+o=phone 53655765 )2353687638( IN IP4)/${1}2353687637${2}/m')
run_case "mutant phone hold answer keeps the o= version" "$M" 0 gateway_hold.xml 1 \
    -- -key hold_ms 0

# ---- phone_hold.xml: gateway requests that must fail it ---------------------------
M=$(mutant gateway_hold.xml gateway_hold_sendrecv.xml 's/^(\s+)a=sendonly$/${1}a=sendrecv/m')
run_case "mutant gateway re-INVITE a=sendrecv (no hold)" phone_hold.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_hold.xml gateway_hold_token.xml 's/^(\s+o=gateway 53655765 2353687638 IN IP4 \[local_ip\]\n\s+)s=\[sdp_token\]$/${1}s=gw-other/m')
run_case "mutant gateway re-INVITE with another token" phone_hold.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_hold.xml gateway_hold_same_version.xml 's/^(\s+o=gateway 53655765 )2353687638( IN IP4)/${1}2353687637${2}/m')
run_case "mutant gateway re-INVITE keeps the o= version" phone_hold.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_hold.xml gateway_hold_other_from_tag.xml \
    's{(INVITE \[next_url\] SIP/2\.0\n[^\n]*\n\s*\[routes\]\n\s*)\[last_From:\]}{${1}From: "sipdrain gateway" <sip:gateway\@[local_ip]:[local_port]>;tag=other[pid]}s')
run_case "mutant gateway re-INVITE with another From tag" phone_hold.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_hold.xml gateway_hold_info_ctype.xml 's{^(\s+)Content-Type: application/dtmf-relay$}{${1}Content-Type: application/dtmf}m')
run_case "mutant gateway INFO Content-Type application/dtmf" phone_hold.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_hold.xml gateway_hold_signal_6.xml 's/^(\s+)Signal=5$/${1}Signal=6/m')
run_case "mutant gateway INFO Signal=6" phone_hold.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_hold.xml gateway_hold_info_cseq_2.xml 's/^(\s+)CSeq: 3 INFO$/${1}CSeq: 2 INFO/m; s/(:\[\[:blank:\]\]\*)3(\[\[:blank:\]\]\+INFO)/${1}2${2}/')
run_case "mutant gateway INFO CSeq 2 (not higher)" phone_hold.xml 1 "$M" 0 \
    -- -key hold_ms 0

# ---- wrong order / wrong pairs (the blocked side ends in its -timeout) -------------
M=$(mutant gateway_hold.xml gateway_hold_no_info.xml 's{\n\s*<!-- DTMF digit 5.*?</recv>\n}{\n}s')
TMO=6s run_case "mutant gateway skips the INFO: BYE where INFO due" phone_hold.xml 1 "$M" 255 \
    -- -key hold_ms 0
TMO=6s run_case "gateway_call (no hold): BYE where re-INVITE due" phone_hold.xml 1 gateway_call.xml 255 \
    -- -key hold_ms 0
TMO=6s run_case "phone_answer: re-INVITE where the BYE is due" phone_answer.xml 1 gateway_hold.xml 255 \
    -- -key hold_ms 0

selftest_finish
