#!/bin/bash
# The builds of the A/B benchmarks (ab.sh, ab-checker.sh, ab-faults.sh), made
# outside the lab: the VM sees this machine's files read-only and builds
# there would take hours. Run from the repository root:
#
#   lab/bench/ab-build.sh OLD_REV PACKAGE...     # A at OLD_REV, B the working tree
#   lab/bench/ab-build.sh --old-only OLD_REV PACKAGE...
#
# A: each PACKAGE's binary (ipvs-exporter, ipvs-checker: the package's name)
# at OLD_REV, built in a temporary git worktree of it with a target
# directory of its own (lab/.cache/ab/target, kept: the next revision built
# there shares its dependencies) and kept as lab/.cache/ab/PACKAGE-SHA (SHA:
# OLD_REV's first 12 hex digits), not built again. B: the working tree's,
# in target/release. Both under nice. --old-only skips B (a bisection builds
# several revisions for one B).
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."

usage() {
	echo "usage: $0 [--old-only] OLD_REV PACKAGE..." >&2
	exit 2
}
old_only=0
if [[ ${1:-} == --old-only ]]; then
	old_only=1
	shift
fi
(($# >= 2)) || usage
old_sha=$(git rev-parse --verify --quiet "$1^{commit}") || {
	echo "$1 is not a revision of this repository" >&2
	exit 2
}
old_sha=${old_sha:0:12}
shift
packages=("$@")
cargo_packages=()
for package in "${packages[@]}"; do cargo_packages+=(-p "$package"); done
cache=$PWD/lab/.cache/ab

missing=()
for package in "${packages[@]}"; do
	if [[ -x $cache/$package-$old_sha ]]; then
		echo "A: $cache/$package-$old_sha (built before)"
	else
		missing+=("$package")
	fi
done
if ((${#missing[@]})); then
	src=$cache/src
	mkdir -p "$cache"
	# The first time, a copy of target/release: the dependencies both
	# revisions share are then not built again.
	if [[ ! -d $cache/target/release && -d target/release ]]; then
		mkdir -p "$cache/target"
		cp -a target/release "$cache/target/"
	fi
	git worktree remove --force "$src" 2>/dev/null || true
	git worktree add --detach "$src" "$old_sha" >/dev/null
	args=()
	for package in "${missing[@]}"; do args+=(-p "$package"); done
	(cd "$src" && CARGO_TARGET_DIR=$cache/target nice cargo build --release --locked "${args[@]}")
	for package in "${missing[@]}"; do
		cp "$cache/target/release/$package" "$cache/$package-$old_sha.tmp"
		mv "$cache/$package-$old_sha.tmp" "$cache/$package-$old_sha"
		echo "A: $cache/$package-$old_sha"
	done
	git worktree remove --force "$src"
fi
((old_only)) && exit 0
nice cargo build --release "${cargo_packages[@]}"
for package in "${packages[@]}"; do echo "B: $PWD/target/release/$package"; done
