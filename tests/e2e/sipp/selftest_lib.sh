# shellcheck shell=bash
# selftest_lib.sh - helpers shared by the SIPp self-test scripts in this
# folder (selftest_run.sh, selftest_calls.sh, selftest_nailed.sh,
# selftest_3pcc.sh, selftest_hold.sh). Sourced, not run:
#
#     HERE=$(cd "$(dirname "$0")" && pwd)
#     . "$HERE/selftest_lib.sh"
#     selftest_init sipp-calls
#
# The caller sets HERE (this folder) before sourcing. Sourcing defines the
# functions below and two globals: COMMON (the sipp options every phone /
# gateway / edge run shares) and WAIT_RC. Nothing runs at source time.
#
# Set-up and end
#   selftest_init <prefix>
#       Sets OUT (SELFTEST_OUT, or a new mktemp -d /tmp/<prefix>.XXXXXX) and
#       creates it, SIPP (SIPP from the environment, default sipp), and the
#       counters FAILED=0 and N=0.
#   selftest_finish
#       Prints a blank line and "selftest: all $N cases as expected" or
#       "selftest: MISMATCHES above", then exits the script with $FAILED.
#
# Ports and processes
#   wait_udp_bound <port> / wait_udp_free <port>
#       Polls `ss` every 0.1 s, up to 5 s, until something is / nothing is
#       bound on UDP <port>; returns 0 then, 1 when the 5 s are over.
#   wait_pid <pid> <seconds>
#       Waits for a child of this shell, kills it by PID when it is still
#       running after <seconds>. Sets WAIT_RC to its exit code or "killed".
#       Called directly, never in $(...): only this shell can reap its
#       children.
#
# Cases
#   next_tag
#       N=N+1 and TAG=N as two digits (01, 02, ...): the case number that
#       prefixes the case's log files.
#   split_args [args...] [-- args...]
#       Sets ARGS1 to the arguments before the first "--" and ARGS2 to
#       those after it (all of them when there is no "--"; ARGS2 empty).
#   exit_matches <expected> <got>
#       True when <expected> is "-" (anything), "nz" and <got> is not 0, or
#       equal to <got>.
#   set_verdict <expected> <got> [<expected> <got>...]
#       VERDICT=ok when every pair matches (exit_matches), else
#       VERDICT=MISMATCH and FAILED=1.
#   result_row <w1> <w2> <w3> <tag> <file 1> <file 2> <label> \
#              <side 1> <expect 1> <got 1> <side 2> <expect 2> <got 2> \
#              <verdict> [<note>]
#       Prints one line of a two-sided result matrix: the tag, the base
#       names of the two files and the label in columns <w1>, <w2>, <w3>
#       wide, "<side 1 in 5 columns> <expect> got <got> <side 2> <expect>
#       got <got>", then the verdict; with <note>: the verdict in 8
#       columns and the note after it.
#   mutant <src file in HERE> <name> <perl -0pe expression>
#       Writes $OUT/<name>, a copy of $HERE/<src> with the substitution
#       applied, and prints its path. Exits the script with 2 (message on
#       stderr) when the copy is identical to the source (the substitution
#       matched nothing).
#
# Running sipp (uses SIPP, OUT, COMMON)
#   sipp_run <tag> <role> <timeout> [args A...] -- [args B...]
#       Runs, in the foreground and with sipp's exit code as its status:
#         $SIPP A... ${COMMON[@]} -timeout <timeout>
#               -error_file $OUT/<tag>.<role>.err
#               -message_file $OUT/<tag>.<role>.msg
#               -log_file $OUT/<tag>.<role>.log B...
#       stdout and stderr to $OUT/<tag>.<role>.out, stdin from /dev/null.
#   sipp_start <tag> <role> <timeout> [args A...] -- [args B...]
#       The same sipp run in the background; SIPP_PID = sipp's own PID.
#
# Phone leg: registrar + phone in the background, far side in the foreground
#   run_phone_case <label> <phone xml|path|NOPHONE> <expect phone> \
#                  <far xml|path|NO<PEER>> <expect far> \
#                  [phone args...] -- [far side args...]
#       1. waits until every port in FREE_PORTS is free (warning if not);
#       2. starts $REG_XML (default $HERE/selftest_registrar.xml) on
#          127.0.0.1:REG_PORT (role "reg", options REG_OPTS);
#       3. unless NOPHONE: starts the phone (role "phone") towards
#          127.0.0.1:REG_PORT, -sf and -oocsf = the phone file (no -oocsf
#          with NO_OOCSF=1), -p PHONE_PORT, PHONE_OPTS, -s DN, phone args;
#       4. waits for the registrar to end (or the phone to die), at most
#          the timeout + 5 s, then wait_pid <registrar> 1;
#       5. with STRAY=1 and a phone: options_200.xml from STRAY_PORT
#          (STRAY_OPTS, -timeout 2s, role "stray") to the phone, its exit
#          code written to $OUT/<tag>.stray.rc;
#       6. unless the far file is NO<PEER> (NOGW, NOEDGE): the far side
#          (role PEER) in the foreground towards 127.0.0.1:PHONE_PORT,
#          bound on ${<PEER>_PORT} (GW_PORT, EDGE_PORT; default REG_PORT),
#          PEER_OPTS, -s DN, far side args;
#       7. wait_pid <phone> <timeout + 5>;
#       8. set_verdict on both exit codes and a result_row with widths
#          ROW_WIDTHS, sides "phone" and PEER; with PHONE_NOTE set, the
#          phone's report (phone_trace PHONE_NOTE) as the note ("-" if
#          none).
#       Relative file names are taken from HERE. The timeout is TMO from the
#       environment of the call, default CASE_TMO (e.g. 20s).
#       Globals read: HERE OUT SIPP COMMON DN PHONE_PORT REG_PORT
#       STRAY_PORT (only with STRAY=1) FREE_PORTS REG_OPTS PHONE_OPTS
#       STRAY_OPTS PEER_OPTS PEER CASE_TMO ROW_WIDTHS PHONE_NOTE; from the
#       call's environment: TMO REG_XML NO_OOCSF STRAY GW_PORT/EDGE_PORT.
#       Changes: N, TAG, FAILED, VERDICT, WAIT_RC, SIPP_PID, ARGS1/2.
#   phone_trace <first|last> <phone log>
#       Prints the "trace=..." word of the phone's "phone report:" log
#       line: first = the first line starting with "phone report:",
#       last = the last line containing it. Prints nothing if none.

COMMON=(-m 1 -i 127.0.0.1 -t u1 -timeout_error -nostdin -trace_err -trace_msg -trace_logs)
WAIT_RC=-

selftest_init() { # <mktemp prefix>
    OUT=${SELFTEST_OUT:-$(mktemp -d "/tmp/$1.XXXXXX")}
    mkdir -p "$OUT"
    SIPP=${SIPP:-sipp}
    FAILED=0
    N=0
}

selftest_finish() {
    echo
    if [ "$FAILED" = 0 ]; then
        echo "selftest: all $N cases as expected"
    else
        echo "selftest: MISMATCHES above"
    fi
    exit "$FAILED"
}

_wait_udp() { # <bound|free> <port>
    local state
    for _ in $(seq 1 50); do
        state=free
        if ss -Hlun "sport = :$2" 2>/dev/null | grep -q .; then state=bound; fi
        if [ "$state" = "$1" ]; then return 0; fi
        sleep 0.1
    done
    return 1
}
wait_udp_bound() { _wait_udp bound "$1"; }
wait_udp_free() { _wait_udp free "$1"; }

wait_pid() { # <pid> <seconds>
    local pid=$1 limit=$2
    for _ in $(seq 1 $((limit * 10))); do
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

next_tag() {
    N=$((N + 1))
    TAG=$(printf '%02d' "$N")
}

split_args() { # [args...] [-- args...]
    ARGS1=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do ARGS1+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    ARGS2=("$@")
}

exit_matches() { # <expected: -|nz|code> <got>
    case $1 in
        -) return 0 ;;
        nz) [ "$2" != 0 ] ;;
        *) [ "$2" = "$1" ] ;;
    esac
}

set_verdict() { # <expected> <got> [<expected> <got>...]
    VERDICT=ok
    while [ $# -ge 2 ]; do
        exit_matches "$1" "$2" || VERDICT=MISMATCH
        shift 2
    done
    [ "$VERDICT" = ok ] || FAILED=1
}

result_row() { # <w1> <w2> <w3> <tag> <file1> <file2> <label> <side1> <exp1> <got1> <side2> <exp2> <got2> <verdict> [note]
    local fmt="%s  %-${1}s %-${2}s %-${3}s %-5s %-3s got %-6s %s %-3s got %-4s"
    shift 3
    local tag=$1 f1 f2 label=$4
    f1=$(basename "$2")
    f2=$(basename "$3")
    shift 4
    if [ $# -ge 8 ]; then
        # shellcheck disable=SC2059 # the format is built above
        printf "$fmt %-8s %s\n" "$tag" "$f1" "$f2" "$label" "$@"
    else
        # shellcheck disable=SC2059
        printf "$fmt %s\n" "$tag" "$f1" "$f2" "$label" "$@"
    fi
}

mutant() { # <src file in HERE> <name> <perl -0pe expression>
    local src=$HERE/$1 dst=$OUT/$2
    perl -0pe "$3" "$src" >"$dst"
    if cmp -s "$src" "$dst"; then
        echo "selftest: mutant $2 is identical to $1 (substitution failed)" >&2
        exit 2
    fi
    echo "$dst"
}

_sipp_argv() { # <tag> <role> <timeout> [args A...] -- [args B...]
    local tag=$1 role=$2 tmo=$3
    shift 3
    split_args "$@"
    SIPP_ARGV=("${ARGS1[@]}" "${COMMON[@]}" -timeout "$tmo"
        -error_file "$OUT/$tag.$role.err" -message_file "$OUT/$tag.$role.msg"
        -log_file "$OUT/$tag.$role.log" "${ARGS2[@]}")
    SIPP_LOG="$OUT/$tag.$role.out"
}

sipp_run() { # <tag> <role> <timeout> [args A...] -- [args B...]
    _sipp_argv "$@"
    "$SIPP" "${SIPP_ARGV[@]}" >"$SIPP_LOG" 2>&1 </dev/null
}

sipp_start() { # <tag> <role> <timeout> [args A...] -- [args B...]
    _sipp_argv "$@"
    "$SIPP" "${SIPP_ARGV[@]}" >"$SIPP_LOG" 2>&1 </dev/null &
    SIPP_PID=$!
}

phone_trace() { # <first|last> <phone log>
    case $1 in
        first) sed -n 's/^phone report: \(trace=[^ ]*\).*/\1/p' "$2" 2>/dev/null | head -n 1 ;;
        last) sed -n "s/^.*phone report: \(trace=[^ ]*\).*$/\1/p" "$2" 2>/dev/null | tail -1 ;;
    esac
}

run_phone_case() { # see the header
    local label=$1 pxml=$2 pexp=$3 fxml=$4 fexp=$5
    shift 5
    split_args "$@"
    local pargs=("${ARGS1[@]}") fargs=("${ARGS2[@]}")
    local port_var=${PEER^^}_PORT none=NO${PEER^^}
    local tmo=${TMO:-$CASE_TMO} far_port=${!port_var:-$REG_PORT} reg_xml=${REG_XML:-$HERE/selftest_registrar.xml}
    local limit=$(( ${tmo%s} + 5 ))
    next_tag
    local tag=$TAG
    case $pxml in /*|NOPHONE) ;; *) pxml=$HERE/$pxml ;; esac
    case $fxml in /*|"$none") ;; *) fxml=$HERE/$fxml ;; esac

    local p
    for p in "${FREE_PORTS[@]}"; do
        wait_udp_free "$p" || echo "warning: port $p still bound before case $tag" >&2
    done

    local reg_pid phone_pid="" prc="-" frc="-"
    sipp_start "$tag" reg "$tmo" -sf "$reg_xml" -p "$REG_PORT" "${REG_OPTS[@]}" --
    reg_pid=$SIPP_PID
    wait_udp_bound "$REG_PORT" || echo "warning: registrar not bound on $REG_PORT" >&2

    if [ "$pxml" != NOPHONE ]; then
        local ooc=(-oocsf "$pxml")
        [ "${NO_OOCSF:-0}" = 1 ] && ooc=()
        sipp_start "$tag" phone "$tmo" "127.0.0.1:$REG_PORT" -sf "$pxml" "${ooc[@]}" \
            -p "$PHONE_PORT" "${PHONE_OPTS[@]}" -s "$DN" -- "${pargs[@]}"
        phone_pid=$SIPP_PID
    fi
    # The registrar ends after its one answer; if the phone is gone (e.g. its
    # scenario did not load) or nothing comes, it is killed by PID.
    for _ in $(seq 1 $((limit * 10))); do
        kill -0 "$reg_pid" 2>/dev/null || break
        [ -n "$phone_pid" ] && ! kill -0 "$phone_pid" 2>/dev/null && break
        sleep 0.1
    done
    wait_pid "$reg_pid" 1

    if [ "${STRAY:-0}" = 1 ] && [ -n "$phone_pid" ]; then
        # An OPTIONS no call knows: the phone must ignore it (no answer), so
        # this sender ends in its own -timeout (255) after 2 s.
        sipp_run "$tag" stray 2s "127.0.0.1:$PHONE_PORT" -sf "$HERE/options_200.xml" \
            -p "$STRAY_PORT" "${STRAY_OPTS[@]}" -s "$DN" --
        echo "stray OPTIONS sender exit $?" >"$OUT/$tag.stray.rc"
    fi

    if [ "$fxml" != "$none" ]; then
        wait_udp_free "$far_port" || echo "warning: port $far_port still bound" >&2
        sipp_run "$tag" "$PEER" "$tmo" "127.0.0.1:$PHONE_PORT" -sf "$fxml" \
            -p "$far_port" "${PEER_OPTS[@]}" -s "$DN" -- "${fargs[@]}"
        frc=$?
    fi
    if [ -n "$phone_pid" ]; then
        wait_pid "$phone_pid" "$limit"
        prc=$WAIT_RC
    fi

    set_verdict "$pexp" "$prc" "$fexp" "$frc"
    local row=("${ROW_WIDTHS[@]}" "$tag" "$pxml" "$fxml" "$label"
        phone "$pexp" "$prc" "$PEER" "$fexp" "$frc" "$VERDICT")
    if [ -n "$PHONE_NOTE" ]; then
        # how far the phone got (its report line; "-" if it never reported)
        local trace
        trace=$(phone_trace "$PHONE_NOTE" "$OUT/$tag.phone.log")
        row+=("${trace:--}")
    fi
    result_row "${row[@]}"
}
