#!/usr/bin/env bash
# selftest_calls.sh - prove the call scenarios (phone_*.xml, gateway_*.xml)
# against each other, with no sip-edge in between: a gateway scenario calls
# a phone scenario directly, right pairs must pass (exit 0), wrong answers,
# wrong pairs and deliberately broken copies ("mutants") must not.
#
# Usage:  tests/e2e/sipp/selftest_calls.sh             # 30 cases, about 70 s
#         SELFTEST_SLOW=1 tests/e2e/sipp/selftest_calls.sh
#                                   # + 2 cases that end in a 20 s -timeout
#         SELFTEST_OUT=/tmp/x ...   # where logs and mutants go
#
# Per case (all loopback, one case at a time, every sipp -m 1 with
# -timeout <= 20s and -timeout_error, each with its own -cp):
#   1. selftest_registrar.xml on 127.0.0.1:16061 (background);
#   2. the phone on 127.0.0.1:16060 (background), remote 127.0.0.1:16061,
#      -sf and -oocsf = the phone file; it REGISTERs, the registrar answers
#      200 and exits (-m 1), freeing 16061;
#   3. optionally a stray sender (options_200.xml from 16063, unanswered);
#   4. the gateway in the foreground towards 127.0.0.1:16060, bound on
#      127.0.0.1:16061 - the registrar's address, as the edge's INVITE comes
#      from where the phone registered - or on 16062 ("other address");
#   5. the phone's exit code is collected (it ends by itself; killed by PID
#      if it outlives its -timeout by 5 s, reported as "killed").
# Mutants are copies of a scenario with one perl substitution, written to
# the log folder; the script fails if a substitution changed nothing.
# Exit status: 0 when every phone and gateway exit code is the expected one.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=selftest_lib.sh
. "$HERE/selftest_lib.sh"
selftest_init sipp-calls
PHONE_PORT=16060
REG_PORT=16061
OTHER_PORT=16062
STRAY_PORT=16063
DN=1001
# run_phone_case settings (see selftest_lib.sh)
PEER=gw
CASE_TMO=20s
FREE_PORTS=("$PHONE_PORT" "$REG_PORT" "$OTHER_PORT" "$STRAY_PORT")
REG_OPTS=(-cp 18061)
# Each side sends s=<its token> and expects the other's (README.md, "What
# the scenarios check in SDP").
PHONE_OPTS=(-cp 18060 -key sdp_token phone-7f3a -key sdp_expect s=gw-7f3a)
PEER_OPTS=(-cp 18062 -key sdp_token gw-7f3a -key sdp_expect s=phone-7f3a)
STRAY_OPTS=(-cp 18063)
ROW_WIDTHS=(30 33 48)
PHONE_NOTE=

# run_case <label> <phone xml|path|NOPHONE> <expect phone> <gateway xml|path|NOGW> <expect gw> \
#          [phone args...] -- [gateway args...]
# Options in the environment of the call: TMO (default 20s), GW_PORT
# (default REG_PORT), REG_XML (registrar file, default selftest_registrar.xml),
# STRAY=1 (send a stray OPTIONS to the phone before the call), NO_OOCSF=1
# (run the phone without -oocsf).
run_case() { run_phone_case "$@"; }

echo "logs: $OUT"
printf '%s  %-30s %-33s %-48s %s\n' "#" "phone" "gateway" "case" "exit codes (expected / got)"

# ---- right pairs --------------------------------------------------------------
run_case "answered, gateway hangs up" phone_answer.xml 0 gateway_call.xml 0 \
    -- -key hold_ms 500
GW_PORT=$OTHER_PORT run_case "same, INVITE from another address" phone_answer.xml 0 gateway_call.xml 0 \
    -- -key hold_ms 0
STRAY=1 run_case "same, stray OPTIONS first (ignored)" phone_answer.xml 0 gateway_call.xml 0 \
    -- -key hold_ms 200
run_case "answered, phone hangs up after 500 ms" phone_answer_hangup.xml 0 gateway_call_remote_bye.xml 0 \
    -key hold_ms 500 --
run_case "ringing, gateway cancels after 500 ms" phone_no_answer.xml 0 gateway_cancel.xml 0 \
    -- -key ring_ms 500
M=$(mutant phone_no_answer.xml phone_no_answer_487_first.xml \
    's{(<send>\s*<!\[CDATA\[\s*SIP/2\.0 )200 OK(.*?)\[last_CSeq:\](.*?</send>\s*<send>\s*<!\[CDATA\[\s*SIP/2\.0 )487 Request Terminated(.*?)CSeq: \[\$inv_cseq\] INVITE}{${1}487 Request Terminated${2}CSeq: [\$inv_cseq] INVITE${3}200 OK${4}[last_CSeq:]}s')
run_case "ringing, cancel; mutant phone: 487 before 200" "$M" 0 gateway_cancel.xml 0 \
    -- -key ring_ms 200
TMO=8s run_case "BYE never answered, 3 counted (gw: timeout)" phone_ignore_bye.xml 0 gateway_call.xml 255 \
    -nr -key min_byes 3 -- -key hold_ms 200
TMO=12s run_case "BYE never answered, 5 counted (gw: timeout)" phone_ignore_bye.xml 0 gateway_call.xml 255 \
    -nr -key min_byes 5 -- -key hold_ms 0
M=$(mutant gateway_call.xml gateway_call_two_byes.xml \
    's{(<send retrans="500">\s*<!\[CDATA\[\s*BYE .*?</send>)}{$1\n  <send>\n    <![CDATA[\n\n      BYE [next_url] SIP/2.0\n      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n      [last_From:]\n      [last_To:]\n      [last_Call-ID:]\n      CSeq: 3 BYE\n      Max-Forwards: 70\n      Content-Length: 0\n\n    ]]>\n  </send>\n}s')
TMO=6s run_case "2 BYE transactions (CSeq 2, 3), gw -nr" phone_ignore_bye.xml 0 "$M" 255 \
    -nr -key min_byes 2 -- -nr -key hold_ms 0

# ---- checks that must fail ------------------------------------------------------
M=$(mutant phone_answer.xml phone_answer_wrong_s.xml 's/^(\s+)s=\[sdp_token\]$/${1}s=[sdp_token]x/mg')
run_case "mutant phone answers another token (s=phone-7f3ax)" "$M" 0 gateway_call.xml 1 \
    -- -key hold_ms 0
M=$(mutant phone_answer.xml phone_answer_not_sdp.xml 's{(SIP/2\.0 200 OK(?:(?!</send>).)*?Content-Type: )application/sdp}{${1}text/plain}s')
run_case "mutant phone answers Content-Type text/plain" "$M" 0 gateway_call.xml 1 \
    -- -key hold_ms 0
M=$(mutant phone_answer.xml phone_answer_no_v.xml 's/^\s+v=0\n//m')
run_case "mutant phone answers SDP without v=0" "$M" 0 gateway_call.xml 1 \
    -- -key hold_ms 0
M=$(mutant phone_answer.xml phone_answer_no_t.xml 's/^\s+t=0 0\n//m')
run_case "mutant phone answers SDP without t=" "$M" 0 gateway_call.xml 1 \
    -- -key hold_ms 0
M=$(mutant gateway_call.xml gateway_call_wrong_s.xml 's/^(\s+)s=\[sdp_token\]$/${1}s=[sdp_token]x/mg')
run_case "mutant gateway offers another token (s=gw-7f3ax)" phone_answer.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_call.xml gateway_call_token_in_i.xml 's/^(\s+)s=\[sdp_token\]$/${1}s=gateway-offer\n${1}i=s=[sdp_token]/mg')
run_case "mutant gateway: token only inside i=s=gw-7f3a" phone_answer.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_call.xml gateway_call_video.xml 's/^(\s+)m=audio /${1}m=video /mg')
run_case "mutant gateway offers m=video only" phone_answer.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_call.xml gateway_call_not_sdp.xml 's{Content-Type: application/sdp}{Content-Type: text/plain}')
run_case "mutant gateway offer Content-Type text/plain" phone_answer.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_call.xml gateway_call_no_v.xml 's/^\s+v=0\n//m')
run_case "mutant gateway offer without v=0" phone_answer.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_call.xml gateway_call_bad_o.xml 's/^(\s+)o=gateway 53655765 /${1}o=gateway 5365x765 /m')
run_case "mutant gateway offer o= session id not numeric" phone_answer.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_call.xml gateway_call_s_after_c.xml 's/^(\s+)(s=\[sdp_token\])\n(\s+c=IN IP4 \[local_ip\])\n/${3}\n${1}${2}\n/m')
run_case "mutant gateway offer s= after c= (v, o, s order)" phone_answer.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_call.xml gateway_call_no_t.xml 's/^\s+t=0 0\n//m')
run_case "mutant gateway offer without t=" phone_answer.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_call.xml gateway_call_no_c.xml 's/^\s+c=IN IP4 \[local_ip\]\n//m')
run_case "mutant gateway offer without any c=" phone_answer.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_call.xml gateway_call_media_c.xml 's/^(\s+)c=IN IP4 \[local_ip\]\n(\s+t=0 0\n\s+m=audio [^\n]*\n)/${2}${1}c=IN IP4 [local_ip]\n/m')
run_case "mutant gateway: c= in the m= section only (valid)" phone_answer.xml 0 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_call.xml gateway_call_video_no_c.xml 's/^(\s+)c=IN IP4 \[local_ip\]\n(\s+t=0 0\n\s+m=audio [^\n]*\n)((?:\s+a=[^\n]*\n)+)/${2}${1}c=IN IP4 [local_ip]\n${3}${1}m=video 9 RTP\/AVP 31\n${1}a=inactive\n/m')
run_case "mutant gateway: 2nd m= section without c=" phone_answer.xml 1 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_call.xml gateway_call_video_c.xml 's/^(\s+)c=IN IP4 \[local_ip\]\n(\s+t=0 0\n\s+m=audio [^\n]*\n)((?:\s+a=[^\n]*\n)+)/${2}${1}c=IN IP4 [local_ip]\n${3}${1}m=video 9 RTP\/AVP 31\n${1}c=IN IP4 [local_ip]\n${1}a=inactive\n/m')
run_case "mutant gateway: c= in each of 2 m= sections (valid)" phone_answer.xml 0 "$M" 0 \
    -- -key hold_ms 0
M=$(mutant gateway_call_remote_bye.xml gateway_remote_bye_wrong_tag.xml 's{value="tag=\[pid\]SIPpTag00\[call_number\]\|}{value="tag=x[pid]SIPpTag00[call_number]|}')
run_case "mutant gateway expects another To tag in BYE" phone_answer_hangup.xml 0 "$M" 1 \
    -key hold_ms 0 --
run_case "wrong pair: phone answers, gateway cancels" phone_answer.xml 1 gateway_cancel.xml 1 \
    -- -key ring_ms 300
TMO=6s run_case "caller BYEs while the phone holds (gw: timeout)" phone_answer_hangup.xml 1 gateway_call.xml 255 \
    -key hold_ms 3000 -- -key hold_ms 0
M=$(mutant selftest_registrar.xml selftest_registrar_503.xml 's{SIP/2\.0 200 OK}{SIP/2.0 503 Service Unavailable}')
REG_XML=$M run_case "registrar answers 503" phone_answer.xml 1 NOGW -
run_case "phone_answer_hangup without -key hold_ms" phone_answer_hangup.xml 1 NOGW -

# ---- slow: cases that end in the 20 s -timeout ---------------------------------------
if [ "${SELFTEST_SLOW:-0}" = 1 ]; then
    run_case "ignore BYE WITHOUT -nr: retransmits not seen" phone_ignore_bye.xml 255 gateway_call.xml 255 \
        -key min_byes 3 -- -key hold_ms 0
    NO_OOCSF=1 run_case "phone run without -oocsf: INVITE discarded" phone_answer.xml 255 gateway_call.xml 255 \
        -- -key hold_ms 0
fi

selftest_finish
