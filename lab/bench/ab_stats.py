"""What the A/B benchmarks' reports share (ab.sh, ab-checker.sh,
ab-faults.sh): medians with quartiles, the syscalls of an `strace -c`
summary, each function's own instructions in a callgrind dump, and the
tables of where A and B differ. Imported by their report scripts."""

import collections
import re
import statistics


def quartiles(values):
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def spread(values, digits):
    """Median [first-third quartile] of values, or '-' for none."""
    if len(values) < 2:
        return f"{values[0]:.{digits}f}" if values else "-"
    q1, q2, q3 = quartiles(values)
    return f"{q2:.{digits}f} [{q1:.{digits}f}-{q3:.{digits}f}]"


def ratios(pairs):
    """Median [quartiles] of the rounds' own B / A ratios, from (a, b)
    pairs; rounds where A is 0 are left out."""
    values = [b / a for a, b in pairs if a > 0]
    return spread(values, 3) if values else "-"


def strace_calls(path):
    """The total calls of an `strace -c` summary and the calls by
    syscall name."""
    total, calls = 0, {}
    with open(path) as f:
        rows = [l.split() for l in f if re.match(r"^\s*\d+\.\d+\s", l)]
    for row in rows:
        if row[-1] == "total":
            total = int(row[3])
        else:
            calls[row[-1]] = int(row[3])
    return total, calls


def self_costs(path):
    """Each function's own instructions in a callgrind dump (what
    callgrind_annotate --inclusive=no lists): cost lines under fn=, less
    the line after each calls= (the callee's inclusive cost)."""
    names, costs, fn, callee_line = {}, collections.Counter(), None, False
    with open(path) as f:
        for line in f:
            if callee_line:
                callee_line = False
                continue
            named = re.match(r"^c?fn=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if named:
                if named.group(2):
                    names[named.group(1)] = named.group(2)
                if line.startswith("fn="):
                    fn = named.group(1)
            elif line.startswith("calls="):
                callee_line = True
            elif fn and re.match(r"^[-+*0-9]", line):
                costs[fn] += int(line.split()[1])
    return collections.Counter({names.get(k, k): v for k, v in costs.items()})


def crate(function):
    """The crate a function is from (std, core and alloc as "std"; C
    functions of libc and the loader, which have no path, as "libc")."""
    path = function.lstrip("<&*").split(" ")[0]
    head = path.split("::")[0] if "::" in path else "libc"
    return "std" if head in ("core", "alloc") else head


def by_crate(costs):
    grouped = collections.Counter()
    for function, cost in costs.items():
        grouped[crate(function)] += cost
    return grouped


def syscall_rows(a_calls, b_calls, per_a, top, digits, per_b=None):
    """Table rows of the TOP syscalls most made by either, A's counts
    divided by PER_A (scrapes, probes) and B's by PER_B (PER_A if not
    given), with DIGITS decimals."""
    per_b = per_b or per_a
    names = sorted(set(a_calls) | set(b_calls), key=lambda n: -max(a_calls.get(n, 0) / per_a, b_calls.get(n, 0) / per_b))
    for name in names[:top]:
        a, b = a_calls.get(name, 0) / per_a, b_calls.get(name, 0) / per_b
        print(f"| - {name} | {a:,.{digits}f} | {b:,.{digits}f} | {b - a:+,.{digits}f} |")


def differences(title, a, b, per_a, top, per_b=None):
    """A table of the TOP keys where counters A and B differ most, A's
    counts divided by PER_A and B's by PER_B (PER_A if not given)."""
    per_b = per_b or per_a
    print()
    print(f"| {title} | A | B | B - A |")
    print("|:---|---:|---:|---:|")
    keys = sorted(set(a) | set(b), key=lambda k: -abs(b.get(k, 0) / per_b - a.get(k, 0) / per_a))
    for key in keys[:top]:
        x, y = a.get(key, 0) / per_a, b.get(key, 0) / per_b
        print(f"| `{key}` | {x:,.0f} | {y:,.0f} | {y - x:+,.0f} |")
