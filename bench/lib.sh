# Shared helpers of the bench scripts (sourced, not run). The caller sets `bench_name` (the
# prefix of its messages) before it calls them.

# Prints a TCP port nobody listens on (100 random tries in 20000-39999).
free_port() {
  local p i
  for i in $(seq 1 100); do
    p=$((20000 + RANDOM % 20000))
    if [[ -z $(ss -Hltn "sport = :$p") ]]; then echo "$p"; return 0; fi
  done
  echo "${bench_name:-bench}: no free port" >&2; return 1
}
