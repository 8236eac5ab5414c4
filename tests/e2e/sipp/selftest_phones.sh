#!/usr/bin/env bash
# shellcheck disable=SC2016 # the perl expressions of the mutants are single-quoted on purpose
# selftest_phones.sh - prove phones_register.xml (registers many DNs, one
# per call, from an -inf file) and phones_uas.xml (one sipp process
# answering for every agent phone of a site, many concurrent dialogs)
# without an edge:
#   - selftest_phones_registrar.xml plays the edge's registrar for
#     phones_register.xml (5 DNs; it checks each Contact: DN and port =
#     -key contact_port, Expires: 3600);
#   - selftest_phones_edge.xml (and gateway_cancel.xml for CANCEL) play the
#     edge's side of the dialogs towards phones_uas.xml and check every SDP
#     answer (mirrored direction, growing o= version, ...).
# Right runs must pass; mutants (a UAS answering a=sendrecv to an inactive
# offer, a UAS not raising the o= version, a registrar answering 403, an
# INVITE without SDP, a BYE without ACK, a wrong contact port) must fail
# the scenario under test.
#
# Usage:  tests/e2e/sipp/selftest_phones.sh        # 19 cases, about 25 s
#         SELFTEST_OUT=/tmp/x ...                  # where logs go
#
# Ports (127.0.0.1 only, 16240-16299): phones_uas 16240 (-cp 16247, -mp
# 16280), registrar 16241 (-cp 16242, -mp 16270), phones_register 16243
# (-cp 16244, -mp 16274), edge stand-in 16245 (-cp 16246, -mp 16284).
# Every sipp is bounded by -m and -timeout (-timeout_error); a process that
# outlives its timeout by 5 s is killed by its PID ("killed").
# The UAS's per-call result is read from its -trace_stat file (-stf):
# the "uas stats" column shows SuccessfulCall(C)/FailedCall(C), the
# counters answered/cancelled/reinvite/info (C) and the peak CurrentCall
# (sampled once a second, -fd 1: short single calls show 0).
# Exit status: 0 when every exit code is the expected one.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=selftest_lib.sh
. "$HERE/selftest_lib.sh"
selftest_init sipp-phones
UAS_PORT=16240
REG_PORT=16241
CLIENT_PORT=16243
EDGE_PORT=16245
# The phones answer s=<their token>; the edge stand-in (and gateway_cancel.xml)
# offer s=<theirs> (README.md, "What the scenarios check in SDP": phones_uas
# checks that every offer is valid, the stand-in that every answer carries
# the phones' token).
UAS_OPTS=(-cp 16247 -mp 16280 -key sdp_token phones-5a5)
REG_OPTS=(-cp 16242 -mp 16270)
CLIENT_OPTS=(-cp 16244 -mp 16274)
EDGE_OPTS=(-cp 16246 -mp 16284 -key sdp_token gw-5a5 -key sdp_expect s=phones-5a5)
FREE_PORTS=("$UAS_PORT" "$REG_PORT" "$CLIENT_PORT" "$EDGE_PORT")
ROW_WIDTHS=(30 30 50)
TMO=15s

DNS=$OUT/dns5.csv
{ echo SEQUENTIAL; seq 2001 2005; } >"$DNS"
DNS40=$OUT/dns40.csv
{ echo SEQUENTIAL; seq 2001 2040; } >"$DNS40"

wait_free() {
    local p
    for p in "${FREE_PORTS[@]}"; do
        wait_udp_free "$p" || echo "warning: port $p still bound before case $TAG" >&2
    done
}

# stat_last <csv> <column>: the column's value on the last line of a
# -trace_stat file (";"-separated, header first).
stat_last() {
    awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        c { v = $c } END { print (v == "" ? "-" : v) }' "$1" 2>/dev/null
}
# stat_max <csv> <column>: the largest value of the column (e.g. CurrentCall).
stat_max() {
    awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        c && $c + 0 > m { m = $c + 0 } END { print m + 0 }' "$1" 2>/dev/null
}
uas_stats() { # <csv>
    local f=$1
    [ -s "$f" ] || { echo "-"; return; }
    printf 'ok=%s fail=%s answered=%s cancelled=%s reinvite=%s info=%s peak=%s' \
        "$(stat_last "$f" 'SuccessfulCall(C)')" "$(stat_last "$f" 'FailedCall(C)')" \
        "$(stat_last "$f" 'answered(C)')" "$(stat_last "$f" 'cancelled(C)')" \
        "$(stat_last "$f" 'reinvite(C)')" "$(stat_last "$f" 'info(C)')" \
        "$(stat_max "$f" CurrentCall)"
}

# reg_case <label> <registrar xml|path> <expect reg> <expect phones> \
#          [registrar args...] -- [phones_register args...]
# The registrar (-m 5) in the background on REG_PORT, phones_register.xml
# (-inf 5 DNs, -m 5 -r 20) in the foreground from CLIENT_PORT. The note
# lists the DNs the registrar accepted (its log).
reg_case() {
    local label=$1 rxml=$2 rexp=$3 pexp=$4
    shift 4
    split_args "$@"
    local rargs=("${ARGS1[@]}") pargs=("${ARGS2[@]}")
    case $rxml in /*) ;; *) rxml=$HERE/$rxml ;; esac
    next_tag
    local tag=$TAG prc rrc limit=$(( ${TMO%s} + 5 ))
    wait_free
    sipp_start "$tag" reg "$TMO" -sf "$rxml" -p "$REG_PORT" "${REG_OPTS[@]}" -- \
        -m 5 "${rargs[@]}"
    local reg_pid=$SIPP_PID
    wait_udp_bound "$REG_PORT" || echo "warning: registrar not bound on $REG_PORT" >&2
    sipp_run "$tag" phones "$TMO" "127.0.0.1:$REG_PORT" -sf "$HERE/phones_register.xml" \
        -p "$CLIENT_PORT" "${CLIENT_OPTS[@]}" -- -m 5 -r 20 -inf "$DNS" \
        -default_behaviors all,-bye "${pargs[@]}"
    prc=$?
    # a registrar still waiting (the client never sent all 5) is ended by
    # its own -timeout, at the latest killed by PID
    wait_pid "$reg_pid" "$limit"
    rrc=$WAIT_RC
    set_verdict "$rexp" "$rrc" "$pexp" "$prc"
    local dns
    dns=$(sed -n 's/^registrar: DN \([0-9]*\) contact \([^ ]*\).*/\1=\2/p' "$OUT/$tag.reg.log" 2>/dev/null | tr '\n' ' ')
    result_row "${ROW_WIDTHS[@]}" "$tag" "$rxml" phones_register.xml "$label" \
        reg "$rexp" "$rrc" phones "$pexp" "$prc" "$VERDICT" "${dns:--}"
}

# uas_case <label> <uas xml|path> <expect uas> <edge xml|path> <expect edge> <calls> \
#          [uas args...] -- [edge args...]
# phones_uas.xml (-m <calls>, -trace_stat) in the background on UAS_PORT,
# the edge stand-in (-m <calls>) in the foreground from EDGE_PORT; the
# note is the UAS's statistics. With STOP_Q=1 the UAS runs with -m 100000
# and is stopped by the soft quit "q" on its control socket after the edge.
uas_case() {
    local label=$1 uxml=$2 uexp=$3 exml=$4 eexp=$5 calls=$6
    shift 6
    split_args "$@"
    local uargs=("${ARGS1[@]}") eargs=("${ARGS2[@]}")
    case $uxml in /*) ;; *) uxml=$HERE/$uxml ;; esac
    case $exml in /*) ;; *) exml=$HERE/$exml ;; esac
    next_tag
    local tag=$TAG urc erc limit=$(( ${TMO%s} + 5 )) um=$calls
    [ "${STOP_Q:-0}" = 1 ] && um=100000
    wait_free
    sipp_start "$tag" uas "$TMO" -sf "$uxml" -p "$UAS_PORT" "${UAS_OPTS[@]}" -- \
        -m "$um" -trace_stat -stf "$OUT/$tag.uas.csv" -fd 1 "${uargs[@]}"
    local uas_pid=$SIPP_PID
    wait_udp_bound "$UAS_PORT" || echo "warning: UAS not bound on $UAS_PORT" >&2
    sipp_run "$tag" edge "$TMO" "127.0.0.1:$UAS_PORT" -sf "$exml" \
        -p "$EDGE_PORT" "${EDGE_OPTS[@]}" -- -m "$calls" "${eargs[@]}"
    erc=$?
    if [ "${STOP_Q:-0}" = 1 ]; then
        # soft quit: no new calls, open dialogs end normally, then exit
        echo -n q >"/dev/udp/127.0.0.1/${UAS_OPTS[1]}"
    fi
    wait_pid "$uas_pid" "$limit"
    urc=$WAIT_RC
    set_verdict "$uexp" "$urc" "$eexp" "$erc"
    result_row "${ROW_WIDTHS[@]}" "$tag" "$uxml" "$exml" "$label" \
        uas "$uexp" "$urc" edge "$eexp" "$erc" "$VERDICT" "$(uas_stats "$OUT/$tag.uas.csv")"
}

U=phones_uas.xml
E=selftest_phones_edge.xml
R=selftest_phones_registrar.xml

echo "logs: $OUT"
echo
echo "== phones_register.xml against the registrar stand-in (5 DNs from an -inf file)"
printf '%s  %-30s %-30s %-50s %-48s %s\n' "#" "registrar" "client" "case" "exit codes (expected / got)" "DN=Contact accepted"
reg_case "5 DNs, Contact port = -key contact_port" $R 0 0 \
    -key contact_port "$UAS_PORT" -- -key contact_port "$UAS_PORT"
M=$(mutant $R registrar_100_first.xml 's{(  <send>\s*<!\[CDATA\[)}{  <send>\n    <![CDATA[\n\n      SIP/2.0 100 Trying\n      [last_Via:]\n      [last_From:]\n      [last_To:]\n      [last_Call-ID:]\n      [last_CSeq:]\n      Content-Length: 0\n\n    ]]>\n  </send>\n\n$1}')
reg_case "registrar sends 100 Trying, then 200" "$M" 0 0 \
    -key contact_port "$UAS_PORT" -- -key contact_port "$UAS_PORT"
M=$(mutant $R registrar_403.xml 's{SIP/2\.0 200 OK}{SIP/2.0 403 Forbidden}')
reg_case "mutant registrar answers 403" "$M" 0 1 \
    -key contact_port "$UAS_PORT" -- -key contact_port "$UAS_PORT"
reg_case "client gives another contact_port (registrar fails)" $R 1 0 \
    -key contact_port "$UAS_PORT" -- -key contact_port 16299
TMO=4s reg_case "client without -key contact_port (load error)" $R 255 1 \
    -key contact_port "$UAS_PORT" --

echo
echo "== phones_uas.xml against the edge stand-in"
printf '%s  %-30s %-30s %-50s %-48s %s\n' "#" "uas" "edge" "case" "exit codes (expected / got)" "uas stats (-trace_stat)"
uas_case "plain call: INVITE sendrecv, ACK, BYE" $U 0 $E 0 1 \
    -- -inf "$DNS" -key first sendrecv -key calls 0 -key gap_ms 0
uas_case "nailed: INVITE inactive, re-INV, INFO, re-INV inact" $U 0 $E 0 1 \
    -- -inf "$DNS" -key first inactive -key calls 1 -key gap_ms 0
uas_case "nailed, 3 customer calls, 100 ms gaps" $U 0 $E 0 1 \
    -- -inf "$DNS" -key first inactive -key calls 3 -key gap_ms 100
uas_case "20 plain calls at once (-r 40 -l 20, 500 ms gaps)" $U 0 $E 0 20 \
    -- -inf "$DNS40" -r 40 -l 20 -key first sendrecv -key calls 0 -key gap_ms 500
uas_case "40 nailed dialogs at once (-r 40 -l 40, 300 ms)" $U 0 $E 0 40 \
    -- -inf "$DNS40" -r 40 -l 40 -key first inactive -key calls 1 -key gap_ms 300
uas_case "5 CANCELs while ringing (gateway_cancel.xml)" $U 0 gateway_cancel.xml 0 5 \
    -- -r 10 -l 5 -s 2001 -key ring_ms 50
M=$(mutant $E edge_late_cancel.xml 's{(<recv response="200" rrs="true">.*?</recv>\s*)}{$1<send>\n    <![CDATA[\n\n      CANCEL sip:[field0]\@[remote_ip]:[remote_port] SIP/2.0\n      [last_Via:]\n      From: "sipdrain edge" <sip:edge\@[local_ip]:[local_port]>;tag=[pid]EdgeTag[call_number]\n      To: <sip:[field0]\@[remote_ip]:[remote_port]>\n      Call-ID: [call_id]\n      CSeq: 1 CANCEL\n      Max-Forwards: 70\n      Content-Length: 0\n\n    ]]>\n  </send>\n  <recv response="200"/>\n\n  }s')
uas_case "edge: CANCEL crossing the 200 (before the ACK)" $U 0 "$M" 0 1 \
    -- -inf "$DNS" -key first sendrecv -key calls 0 -key gap_ms 0
STOP_Q=1 uas_case "-m 100000, 3 calls, stopped by soft quit q" $U 0 $E 0 3 \
    -- -inf "$DNS" -r 10 -key first inactive -key calls 1 -key gap_ms 200

# ---- mutants: the scenario under test must fail ------------------------------
M=$(mutant $U phones_uas_always_sendrecv.xml 's/a=\[\$dir\]/a=sendrecv/g')
uas_case "mutant UAS answers a=sendrecv to inactive offers" "$M" 0 $E 1 1 \
    -- -inf "$DNS" -key first inactive -key calls 1 -key gap_ms 0
M=$(mutant $U phones_uas_other_token.xml 's/^(\s+)s=\[sdp_token\]$/${1}s=phones-other/mg')
uas_case "mutant UAS answers with another token" "$M" 0 $E 1 1 \
    -- -inf "$DNS" -key first sendrecv -key calls 0 -key gap_ms 0
M=$(mutant $U phones_uas_same_version.xml 's/ \[\$ver\] IN IP4/ 1 IN IP4/g')
uas_case "mutant UAS keeps the o= version" "$M" 0 $E 1 1 \
    -- -inf "$DNS" -key first inactive -key calls 1 -key gap_ms 0
M=$(mutant $E edge_invite_no_sdp.xml 's{(Subject: first INVITE\s*)Content-Type: application/sdp}{${1}Content-Type: text/plain}')
uas_case "mutant edge: first INVITE without SDP" $U 1 "$M" 0 1 \
    -- -inf "$DNS" -key first sendrecv -key calls 0 -key gap_ms 0
M=$(mutant $E edge_reinvite_no_t.xml 's/(Subject: customer call.*?s=\[sdp_token\]\n(?:\s+c=[^\n]*\n))\s+t=0 0\n/${1}/s')
uas_case "mutant edge: customer re-INVITE SDP without t=" $U 1 "$M" 0 1 \
    -- -inf "$DNS" -key first inactive -key calls 1 -key gap_ms 0
M=$(mutant $E edge_bye_without_ack.xml 's{(<recv response="200" rrs="true">.*?</recv>\s*)<send>.*?</send>}{$1}s')
uas_case "mutant edge: BYE without the ACK (SIPp: 200, failed)" $U 1 "$M" 0 1 \
    -- -inf "$DNS" -key first sendrecv -key calls 0 -key gap_ms 0

selftest_finish
