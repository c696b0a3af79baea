#!/bin/bash
# lab/bench/clock.sh: what a clock read costs in the lab VM on the TSC (the
# lab's default, tsc=reliable) and on the HPET the kernel falls back to
# under TCG without it, and whether the TSC clock is ever behind across the
# two vCPUs (lab/bench/clock.c). Runs here, booting the VM once for each.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
bin=lab/.cache/bench-clock
mkdir -p lab/.cache
cc -O2 -pthread -o "$bin" lab/bench/clock.c
echo "host: $("$bin")"
echo "lab VM, default: $(lab/run -- "$bin")"
echo "lab VM, clocksource=hpet: $(LAB_KERNEL_ARGS=clocksource=hpet lab/run -- "$bin")"
