# bench/lib.sh - shared by the benchmark scripts (sourced, not run).

# summary FILE NAME FIELD -> "median (median of n, min..max a..b)" of column
# FIELD over the lines of FILE whose first column is NAME; nothing if none.
summary() {
    local v n
    v=$(awk -v name="$2" -v f="$3" '$1 == name { print $f }' "$1" | sort -n)
    n=$(echo "$v" | grep -c .)
    [ "$n" -gt 0 ] || return 0
    echo "$(echo "$v" | sed -n "$(( (n + 1) / 2 ))p") (median of $n, min..max $(echo "$v" | head -1)..$(echo "$v" | tail -1))"
}

# pg_login_roles DSN: the programs' roles (migration 0005) may log in to the
# local cluster, which trusts 127.0.0.1: each program is benchmarked logged
# in as its own role, as in production. dsn_as ROLE DSN: DSN as ROLE.
pg_login_roles() {
    local r
    for r in sipdrain_edge sipdrain_agent_state sipdrain_orchestrator sipdrain_drainctl; do
        psql "$1" -qAt -c "ALTER ROLE $r LOGIN" >/dev/null
    done
}
dsn_as() { sed -E "s#^postgresql://([^@/]*@)?#postgresql://$1@#" <<<"$2"; }
