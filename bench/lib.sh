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
