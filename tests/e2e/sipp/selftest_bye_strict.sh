#!/usr/bin/env bash
# selftest_bye_strict.sh - prove the strict BYE scenarios
# (phone_bye_strict.xml, gateway_call_bye_strict.xml) against SIPp stand-ins
# for sip-edge: a correct edge must pass, every kind of out-of-dialog or
# badly numbered BYE must fail the check made for it.
#
# Usage:  tests/e2e/sipp/selftest_bye_strict.sh          # 36 cases, about 90 s
#         SELFTEST_OUT=/tmp/x ...   # where logs and mutants go
#
# Phone leg (as selftest_calls.sh, other ports): selftest_registrar.xml on
# 127.0.0.1:16301; the phone on 16300 (-sf = -oocsf = the phone file, -nr)
# REGISTERs there; the registrar answers and exits; the edge stand-in
# selftest_bye_edge.xml then binds 16301 too (the edge's INVITE comes from
# where the phone registered), calls the phone and sends its BYE in one or
# two transactions ([bye1_n] + [bye2_n] datagrams, 100 ms apart, -nr).
# Caller leg: selftest_bye_edge_gw.xml (a UAS) on 16320, the gateway on
# 16322 calls it; it answers, then BYEs the gateway the same way.
# Control sockets 16310-16312, 16321/16323; media ports (-mp) 16330, 16334,
# 16338, 16342 (SIPp binds -mp and -mp + 2).
# Every sipp: -m 1 -nr, -timeout 15s (6s where a side must time out) with
# -timeout_error; a process outliving its timeout by 5 s is killed by PID.
# Mutants are copies of a stand-in with one perl substitution in the text
# of one BYE transaction, written to the log folder (the script stops if a
# substitution changed nothing).
# Columns: exit codes expected/got; the phone's report trace (which BYEs
# passed: bye = the first, rtx = same transaction, new = a new one, 200 =
# answered), then the first failed check from the error file.
# Exit status: 0 when every exit code is the expected one.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=selftest_lib.sh
. "$HERE/selftest_lib.sh"
selftest_init sipp-bye-strict
PHONE_PORT=16300
REG_PORT=16301
GW_EDGE_PORT=16320
GW_PORT=16322
DN=2001
# run_phone_case settings (see selftest_lib.sh)
PEER=edge
CASE_TMO=15s
FREE_PORTS=("$PHONE_PORT" "$REG_PORT" "$GW_EDGE_PORT" "$GW_PORT")
REG_OPTS=(-cp 16311 -mp 16330)
PHONE_OPTS=(-cp 16310 -mp 16334 -nr)
PEER_OPTS=(-cp 16312 -mp 16338 -nr)
ROW_WIDTHS=(30 34 50)
PHONE_NOTE=last

# The first failed check in a SIPp error file, shortened.
first_check() { # <error file>
    grep -aoE "(strcmp [a-z_]+:\"[^\"]*\" and [a-z_]*:\"[^\"]*\"|test \"[^\"]*\" with check_it failed|Failed regexp match: looking in '[^']{0,48}|Regexp matched but should not[^']*'[^']{0,24}|Discarding message[^,]{0,40}|timed out after '[0-9.]+' seconds|Unsupported keyword '[^']*')" \
        "$1" 2>/dev/null | grep -v "g_byes\|report_combo" | head -n 1
}

# The phone rows' note (run_phone_case calls phone_trace with PHONE_NOTE):
# the phone's report trace, then the first failed check of its error file.
phone_trace() { # <first|last> <phone log>
    local t
    t=$(sed -n "s/^.*phone report: \(trace=[^ ]*\).*$/\1/p" "$2" 2>/dev/null | tail -1)
    printf '%s  %s' "${t:--}" "$(first_check "${2%.log}.err")"
}
phone_case() { run_phone_case "$@"; }

# A caller-leg case: the edge stand-in (UAS) in the background on
# GW_EDGE_PORT, the gateway in the foreground calling it.
gw_case() { # <label> <gateway xml> <exp gw> <edge xml|path> <exp edge> [gw args] -- [edge args]
    local label=$1 gxml=$2 gexp=$3 exml=$4 eexp=$5
    shift 5
    split_args "$@"
    local gargs=("${ARGS1[@]}") eargs=("${ARGS2[@]}")
    local tmo=${TMO:-$CASE_TMO} limit erc grc edge_pid
    limit=$(( ${tmo%s} + 5 ))
    next_tag
    case $gxml in /*) ;; *) gxml=$HERE/$gxml ;; esac
    case $exml in /*) ;; *) exml=$HERE/$exml ;; esac
    wait_udp_free "$GW_EDGE_PORT" || echo "warning: port $GW_EDGE_PORT still bound" >&2
    wait_udp_free "$GW_PORT" || echo "warning: port $GW_PORT still bound" >&2
    sipp_start "$TAG" edge "$tmo" -sf "$exml" -p "$GW_EDGE_PORT" -cp 16321 -mp 16338 -nr -- "${eargs[@]}"
    edge_pid=$SIPP_PID
    wait_udp_bound "$GW_EDGE_PORT" || echo "warning: edge stand-in not bound on $GW_EDGE_PORT" >&2
    sipp_run "$TAG" gw "$tmo" "127.0.0.1:$GW_EDGE_PORT" -sf "$gxml" -p "$GW_PORT" -cp 16323 -mp 16342 -nr \
        -s "$DN" -key first_hop "${FIRST_HOP:-127.0.0.1:$GW_EDGE_PORT}" -- "${gargs[@]}"
    grc=$?
    wait_pid "$edge_pid" "$limit"
    erc=$WAIT_RC
    set_verdict "$gexp" "$grc" "$eexp" "$erc"
    result_row "${ROW_WIDTHS[@]}" "$TAG" "$gxml" "$exml" "$label" gw "$gexp" "$grc" edge "$eexp" "$erc" \
        "$VERDICT" "$(first_check "$OUT/$TAG.gw.err")"
}

SILENT=(-key ignore_byes 0 -key answer no -key quiet_ms 1000)
TWO=(-key bye1_n 2 -key bye2_n 2 -key gap_ms 100)

echo "logs: $OUT"
printf '%s  %-30s %-34s %-50s %s\n' "#" "scenario" "edge stand-in" "case" "exit codes (expected / got), phone trace, first failed check"

# ---- phone leg: right edges ----------------------------------------------------
phone_case "answers the first BYE" phone_bye_strict.xml 0 selftest_bye_edge.xml 0 \
    -key ignore_byes 0 -key answer yes -key quiet_ms 1000 -- -key bye1_n 1 -key bye2_n 0 -key gap_ms 100
phone_case "ignores 3: answers in the 2nd transaction" phone_bye_strict.xml 0 selftest_bye_edge.xml 0 \
    -key ignore_byes 3 -key answer yes -key quiet_ms 1000 -- -key bye1_n 2 -key bye2_n 3 -key gap_ms 100
phone_case "ignores 2: answers a retransmission" phone_bye_strict.xml 0 selftest_bye_edge.xml 0 \
    -key ignore_byes 2 -key answer yes -key quiet_ms 1000 -- -key bye1_n 4 -key bye2_n 0 -key gap_ms 100
phone_case "silent: 3 + 3 datagrams" phone_bye_strict.xml 0 selftest_bye_edge.xml 0 \
    "${SILENT[@]}" -- -key bye1_n 3 -key bye2_n 3 -key gap_ms 100
phone_case "silent: one transaction, 1.5 s between BYEs" phone_bye_strict.xml 0 selftest_bye_edge.xml 0 \
    -key ignore_byes 0 -key answer no -key quiet_ms 2500 -- -key bye1_n 3 -key bye2_n 0 -key gap_ms 1500
M=$(mutant selftest_bye_edge.xml edge_bye2_compact.xml \
    's{(BYE \[next_url\] SIP/2\.0\n\s+)Via:( [^\n]*bye2-[^\n]*\n\s+)From:([^\n]*\n\s+)To:([^\n]*\n\s+)Call-ID:}{${1}v:${2}f:${3}t:${4}i:}')
phone_case "2nd transaction in compact form (v: f: t: i:)" phone_bye_strict.xml 0 "$M" 0 \
    "${SILENT[@]}" -- "${TWO[@]}"
M=$(mutant selftest_bye_edge.xml edge_options_other_call.xml \
    's{(\n  <label id="bye2"/>)}{\n  <send>\n    <![CDATA[\n\n      OPTIONS [next_url] SIP/2.0\n      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n      From: <sip:edge\@[local_ip]:[local_port]>;tag=edge[pid]T[call_number]\n      To: <sip:[service]\@[remote_ip]:[remote_port]>\n      Call-ID: other-[call_id]\n      CSeq: 30 OPTIONS\n      Max-Forwards: 70\n      Content-Length: 0\n\n    ]]>\n  </send>$1}')
phone_case "an OPTIONS of another call between the BYEs" phone_bye_strict.xml 0 "$M" 0 "${SILENT[@]}" -- "${TWO[@]}"

# ---- phone leg: wrong counts and keys -----------------------------------------------
phone_case "answer yes, but fewer BYEs than ignore_byes" phone_bye_strict.xml 1 selftest_bye_edge.xml 0 \
    -key ignore_byes 5 -key answer yes -key quiet_ms 1000 -- "${TWO[@]}"
phone_case "answer maybe (bad key value)" phone_bye_strict.xml 1 selftest_bye_edge.xml 0 \
    -key ignore_byes 0 -key answer maybe -key quiet_ms 1000 -- -key bye1_n 1 -key bye2_n 0 -key gap_ms 100
phone_case "phone run without -key quiet_ms" phone_bye_strict.xml 1 NOEDGE - \
    -key ignore_byes 0 -key answer no --
M=$(mutant selftest_bye_edge.xml edge_invite_no_m.xml 's{\n\s+m=audio \[media_port\] RTP/AVP 0\n}{\n}')
phone_case "mutant edge: INVITE SDP without m= line" phone_bye_strict.xml 1 "$M" 0 \
    "${SILENT[@]}" -- "${TWO[@]}"

# ---- phone leg: BYEs outside the dialog or badly numbered --------------------------------
M=$(mutant selftest_bye_edge.xml edge_bye2_from_tag.xml \
    's{(bye2-\[pid\]-\[call_number\]\n\s+From: <sip:edge\@\[local_ip\]:\[local_port\]>;tag=)edge}{${1}other}')
phone_case "mutant edge: 2nd transaction, another From tag" phone_bye_strict.xml 1 "$M" 0 "${SILENT[@]}" -- "${TWO[@]}"
M=$(mutant selftest_bye_edge.xml edge_bye2_no_to_tag.xml \
    's{(bye2-\[pid\]-\[call_number\]\n[^\n]*\n\s+To: <sip:\[service\]\@\[remote_ip\]:\[remote_port\]>);tag=\[\$phone_tag\]}{$1}')
phone_case "mutant edge: 2nd transaction, no To tag" phone_bye_strict.xml 1 "$M" 0 "${SILENT[@]}" -- "${TWO[@]}"
M=$(mutant selftest_bye_edge.xml edge_bye2_to_tag.xml \
    's{(bye2-\[pid\]-\[call_number\]\n[^\n]*\n\s+To: <sip:\[service\]\@\[remote_ip\]:\[remote_port\]>;tag=)}{${1}x}')
phone_case "mutant edge: 2nd transaction, another To tag" phone_bye_strict.xml 1 "$M" 0 "${SILENT[@]}" -- "${TWO[@]}"
M=$(mutant selftest_bye_edge.xml edge_bye2_cseq_same.xml 's{CSeq: 22 BYE}{CSeq: 21 BYE}')
phone_case "mutant edge: new transaction, same CSeq 21" phone_bye_strict.xml 1 "$M" 0 "${SILENT[@]}" -- "${TWO[@]}"
M=$(mutant selftest_bye_edge.xml edge_bye2_cseq_lower.xml 's{CSeq: 22 BYE}{CSeq: 19 BYE}')
phone_case "mutant edge: new transaction, lower CSeq 19" phone_bye_strict.xml 1 "$M" 0 "${SILENT[@]}" -- "${TWO[@]}"
M=$(mutant selftest_bye_edge.xml edge_bye1_cseq_invite.xml 's{CSeq: 21 BYE}{CSeq: 20 BYE}')
phone_case "mutant edge: first BYE CSeq 20 = the INVITE's" phone_bye_strict.xml 1 "$M" 0 "${SILENT[@]}" -- "${TWO[@]}"
M=$(mutant selftest_bye_edge.xml edge_bye2_same_branch.xml 's{branch=z9hG4bK-bye2-}{branch=z9hG4bK-bye1-}')
phone_case "mutant edge: same branch, CSeq 21 then 22" phone_bye_strict.xml 1 "$M" 0 "${SILENT[@]}" -- "${TWO[@]}"
M=$(mutant selftest_bye_edge.xml edge_bye2_method.xml 's{CSeq: 22 BYE}{CSeq: 22 INVITE}')
phone_case "mutant edge: BYE with CSeq 22 INVITE" phone_bye_strict.xml 1 "$M" 0 "${SILENT[@]}" -- "${TWO[@]}"
M=$(mutant selftest_bye_edge.xml edge_bye2_call_id.xml \
    's{(bye2-\[pid\]-\[call_number\]\n(?:[^\n]*\n){2}\s+Call-ID: )}{${1}other-}')
phone_case "mutant edge: 2nd transaction, another Call-ID" phone_bye_strict.xml 1 "$M" 0 "${SILENT[@]}" -- "${TWO[@]}"
M=$(mutant selftest_bye_edge.xml edge_bye2_r_uri.xml \
    's{BYE \[next_url\] SIP/2\.0(\n\s+Via: [^\n]*bye2-)}{BYE sip:other\@[remote_ip]:[remote_port] SIP/2.0$1}')
phone_case "mutant edge: 2nd transaction, other Request-URI" phone_bye_strict.xml 1 "$M" 0 "${SILENT[@]}" -- "${TWO[@]}"
M=$(mutant selftest_bye_edge.xml edge_options_in_dialog.xml \
    's{(\n  <label id="bye2"/>)}{\n  <send>\n    <![CDATA[\n\n      OPTIONS [next_url] SIP/2.0\n      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n      From: <sip:edge\@[local_ip]:[local_port]>;tag=edge[pid]T[call_number]\n      To: <sip:[service]\@[remote_ip]:[remote_port]>;tag=[\$phone_tag]\n      Call-ID: [call_id]\n      CSeq: 30 OPTIONS\n      Max-Forwards: 70\n      Content-Length: 0\n\n    ]]>\n  </send>$1}')
phone_case "mutant edge: an OPTIONS in the dialog, then BYEs" phone_bye_strict.xml 1 "$M" 0 "${SILENT[@]}" -- "${TWO[@]}"
M=$(mutant selftest_bye_edge.xml edge_bye2_route.xml \
    's{(\n(\s+)Via: [^\n]*bye2-[^\n]*)}{$1\n$2Route: <sip:127.0.0.1:5999;lr>}')
phone_case "mutant edge: 2nd transaction with a Route" phone_bye_strict.xml 1 "$M" 0 "${SILENT[@]}" -- "${TWO[@]}"
M=$(mutant selftest_bye_edge.xml edge_bye1_no_to_tag.xml \
    's{(bye1-\[pid\]-\[call_number\]\n[^\n]*\n\s+To: <sip:\[service\]\@\[remote_ip\]:\[remote_port\]>);tag=\[\$phone_tag\]}{$1}')
phone_case "mutant edge: even the first BYE without To tag" phone_bye_strict.xml 1 "$M" 0 "${SILENT[@]}" -- "${TWO[@]}"
M=$(mutant selftest_bye_edge.xml edge_bye2_old_edge.xml \
    's{(bye2-\[pid\]-\[call_number\]\n\s+From: <sip:edge\@\[local_ip\]:\[local_port\]>;tag=)edge([^\n]*\n\s+To: <sip:\[service\]\@\[remote_ip\]:\[remote_port\]>);tag=\[\$phone_tag\]}{${1}other${2}}; s{CSeq: 22 BYE}{CSeq: 1001 BYE}')
phone_case "the old edge: new From tag, no To tag, CSeq 1001" phone_bye_strict.xml 1 "$M" 0 "${SILENT[@]}" -- "${TWO[@]}"
M=$(mutant selftest_bye_edge.xml edge_bye2_old_edge_answered.xml \
    's{(bye2-\[pid\]-\[call_number\]\n\s+From: <sip:edge\@\[local_ip\]:\[local_port\]>;tag=)edge([^\n]*\n\s+To: <sip:\[service\]\@\[remote_ip\]:\[remote_port\]>);tag=\[\$phone_tag\]}{${1}other${2}}; s{CSeq: 22 BYE}{CSeq: 1001 BYE}')
phone_case "the old edge, phone answers its 3rd BYE" phone_bye_strict.xml 1 "$M" 0 \
    -key ignore_byes 2 -key answer yes -key quiet_ms 1000 -- "${TWO[@]}"

# ---- caller leg ----------------------------------------------------------------------
gw_case "answers the first BYE" gateway_call_bye_strict.xml 0 selftest_bye_edge_gw.xml 0 \
    -key ignore_byes 0 -- -key bye1_n 1 -key bye2_n 0 -key gap_ms 100
FIRST_HOP=127.0.0.1:1 gw_case "BYEs from another hop than first_hop (no route set followed)" \
    gateway_call_bye_strict.xml 1 selftest_bye_edge_gw.xml 0 \
    -key ignore_byes 0 -- -key bye1_n 1 -key bye2_n 0 -key gap_ms 100
gw_case "ignores 3: answers in the 2nd transaction" gateway_call_bye_strict.xml 0 selftest_bye_edge_gw.xml 0 \
    -key ignore_byes 3 -- -key bye1_n 2 -key bye2_n 3 -key gap_ms 100
TMO=6s gw_case "fewer BYEs than ignore_byes (gw: timeout)" gateway_call_bye_strict.xml 255 selftest_bye_edge_gw.xml 0 \
    -key ignore_byes 5 -- "${TWO[@]}"
M=$(mutant selftest_bye_edge_gw.xml edge_gw_bye2_from_tag.xml \
    's{(bye2-\[pid\]-\[call_number\]\n\s+From: [^\n]*;tag=)edge}{${1}other}')
gw_case "mutant edge: 2nd transaction, another From tag" gateway_call_bye_strict.xml 1 "$M" 0 \
    -key ignore_byes 3 -- "${TWO[@]}"
M=$(mutant selftest_bye_edge_gw.xml edge_gw_bye2_no_to_tag.xml \
    's{(bye2-\[pid\]-\[call_number\]\n[^\n]*\n\s+To: \[\$gw_from\]);tag=\[\$gw_tag\]}{$1}')
gw_case "mutant edge: 2nd transaction, no To tag" gateway_call_bye_strict.xml 1 "$M" 0 \
    -key ignore_byes 3 -- "${TWO[@]}"
M=$(mutant selftest_bye_edge_gw.xml edge_gw_bye2_cseq_same.xml 's{CSeq: 2 BYE}{CSeq: 1 BYE}')
gw_case "mutant edge: new transaction, same CSeq 1" gateway_call_bye_strict.xml 1 "$M" 0 \
    -key ignore_byes 3 -- "${TWO[@]}"
M=$(mutant selftest_bye_edge_gw.xml edge_gw_bye2_r_uri.xml \
    's{BYE \[next_url\] SIP/2\.0(\n\s+Via: [^\n]*bye2-)}{BYE sip:other\@127.0.0.1:[remote_port] SIP/2.0$1}')
gw_case "mutant edge: 2nd transaction, other Request-URI" gateway_call_bye_strict.xml 1 "$M" 0 \
    -key ignore_byes 3 -- "${TWO[@]}"
M=$(mutant selftest_bye_edge_gw.xml edge_gw_bye2_route.xml \
    's{(\n(\s+)Via: [^\n]*bye2-[^\n]*)}{$1\n$2Route: <sip:127.0.0.1:5999;lr>}')
gw_case "mutant edge: 2nd transaction with a Route" gateway_call_bye_strict.xml 1 "$M" 0 \
    -key ignore_byes 3 -- "${TWO[@]}"
M=$(mutant selftest_bye_edge_gw.xml edge_gw_bye2_old_edge.xml \
    's{(bye2-\[pid\]-\[call_number\]\n\s+From: [^\n]*;tag=)edge([^\n]*\n\s+To: \[\$gw_from\]);tag=\[\$gw_tag\]}{${1}other${2}}; s{CSeq: 2 BYE}{CSeq: 1001 BYE}')
gw_case "the old edge: new From tag, no To tag, CSeq 1001" gateway_call_bye_strict.xml 1 "$M" 0 \
    -key ignore_byes 3 -- "${TWO[@]}"
M=$(mutant selftest_bye_edge_gw.xml edge_gw_bye2_call_id.xml \
    's{(bye2-\[pid\]-\[call_number\]\n(?:[^\n]*\n){2}\s+Call-ID: )}{${1}other-}')
TMO=6s gw_case "mutant edge: 2nd transaction, another Call-ID" gateway_call_bye_strict.xml 255 "$M" 0 \
    -key ignore_byes 2 -- "${TWO[@]}"

selftest_finish
