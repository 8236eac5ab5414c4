# tools/free-port.sh - sourced (from the repository's root) by the scripts
# that start servers on loopback: tools/demo.sh, tests/e2e/ha-lib.sh,
# bench/edge.sh.
#
# free_port VAR: VAR = a loopback port nobody uses, UDP or TCP, and not
# handed out before in this run (VAR: any name but _fp), in 20000-32767:
# below the kernel's ephemeral range (32768-60999), where any outgoing
# connection may take a port between our check and the server's bind.
# Returns 1, saying so, when 200 tries found none.
taken=${taken:-" "}
free_port() {
    local _fp
    for _ in $(seq 1 200); do
        _fp=$((20000 + RANDOM % 12768))
        case "$taken" in *" $_fp "*) continue ;; esac
        if [ -z "$(ss -Hanu "( sport = :$_fp )")$(ss -Hant "( sport = :$_fp )")" ]; then
            taken="$taken$_fp "
            printf -v "$1" '%s' "$_fp"
            return 0
        fi
    done
    echo "${0##*/}: no free port on loopback" >&2
    return 1
}
