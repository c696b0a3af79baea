#!/bin/bash
# Benchmark: how long ipvs-checker takes, and how much memory, to load and
# validate a large config (`--config.check`), and that a file past the
# limits is refused. No kernel needed: it runs on the build machine.
#
#   cargo build --release -p ipvs-checker
#   lab/bench/config-load.sh [BINARY]     (default target/release/ipvs-checker)
#
# Configs made here: 1,000 / 10,000 / 100,000 real servers (100 per
# service, tcp checks), a 10 MB file (the 100,000 one padded with
# comments), and a YAML alias bomb (nine levels of ten). Prints, for each:
# the file's size, wall time, peak RSS and the first line of the verdict.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
binary=${1:-target/release/ipvs-checker}
[[ -x $binary ]] || { echo "config-load: $binary not built (cargo build --release -p ipvs-checker)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

python3 - "$dir" <<'PY'
import sys
out = sys.argv[1]
def config(services, per_service):
    lines = ["defaults: {interval: 2s, timeout: 1s, check: {type: tcp}}", "services:"]
    for s in range(services):
        lines.append(f"  - address: 198.18.{s // 250}.{s % 250 + 1}:80")
        lines.append("    real_servers:")
        for r in range(per_service):
            lines.append(f"      - address: 10.{s // 250}.{s % 250}.{r + 1}:80")
    return "\n".join(lines) + "\n"
for n in (1000, 10000, 100000):
    open(f"{out}/rs-{n}.yaml", "w").write(config(n // 100, 100))
text = config(1000, 100)
pad = "# " + "x" * 98 + "\n"
open(f"{out}/10MB.yaml", "w").write(text + pad * ((10_000_000 - len(text)) // len(pad)))
bomb = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
prev = "a"
for name in "bcdefghi":
    bomb.append(f"{name}: &{name} [" + ",".join(["*" + prev] * 10) + "]")
    prev = name
bomb.append("services: [{address: 198.18.0.1:80, real_servers: [{address: 10.0.0.1:80}]}]")
open(f"{out}/alias-bomb.yaml", "w").write("\n".join(bomb) + "\n")
PY

printf '%-18s %10s %9s %10s  %s\n' file bytes seconds peak_rss verdict
for file in rs-1000 rs-10000 rs-100000 10MB alias-bomb; do
	path=$dir/$file.yaml
	verdict=$(/usr/bin/time -f '%e %M' -o "$dir/time" "$binary" --config.check --config.file "$path" 2>&1 >/dev/null | head -1 || true)
	read -r seconds kb < <(tail -1 "$dir/time")
	[[ -n $verdict ]] || verdict="loaded"
	printf "%-18s %10d %9s %8d KB  %s\n" "$file" "$(stat -c %s "$path")" "$seconds" "$kb" "${verdict/$dir\//}"
done
