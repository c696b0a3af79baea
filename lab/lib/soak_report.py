"""The soak run's verdicts and plots (soak.py calls report() at the end).

Verdicts, each PASS or FAIL with its figure, in OUT/report.md and on
stdout:
  * RSS and open descriptors of each daemon flat after the warm-up: the
    least-squares slope, and the rise it makes over the window after the
    warm-up, which must stay under max(1 MB, 2 % of the mean) for RSS and
    under max(4, 5 % of the mean) for the descriptors held from one sample
    to the next, 10 s apart, to the same object (a leak is held; so is
    the socket each real server's check keeps between its probes, a
    count that stays as it is; the sockets of the probes in flight, which
    move the checker's count by a hundred from one sample to the next,
    are new each probe or taken from those kept; the slope of every open
    descriptor is given beside it); a fall passes (no leak);
  * every injected failure seen (the checker set the weight to 0 in the
    kernel, from its log) within interval x fall + timeout + 1 s of the
    config in force; with a reload in between, within that of the config
    it loaded, counted from the reload (soak.bound_down_over_reload), if
    that is later;
  * no scrape error;
  * every weight right at the end (configured, or 0 for a real server
    still failed);
  * ipvs_checker_transitions_total of every real server equal to what the
    injected failures and recoveries make (1 from unknown to up, then one
    per failure and one per recovery).
Plots (gnuplot, PNG): RSS, descriptors, detection times.
"""

import csv
import datetime
import re
import subprocess

import soak


def slope(points: list[tuple[float, float]]) -> float:
    """Least squares: units per second."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (v - mv) for t, v in points) / den if den else 0.0


def weight_log(path: str) -> dict[str, list[float]]:
    """real server -> times the checker set its weight to 0."""
    zeros: dict[str, list[float]] = {}
    pattern = re.compile(r'ts=(\S+) .*msg="weight set".* real_server=(\S+) from=\d+ to=0\b')
    for line in open(path):
        m = pattern.search(line)
        if m:
            ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
            zeros.setdefault(m.group(2), []).append(ts.replace(tzinfo=datetime.timezone.utc).timestamp())
    return zeros


def final_weights(table: str) -> dict[tuple[int, str], int]:
    """(service port, real server address:port) -> weight, from `ipvsadm -Ln`."""
    weights, port = {}, None
    for line in table.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] == "TCP":
            port = int(f[1].rsplit(":", 1)[1])
        elif len(f) >= 4 and f[0] == "->" and port is not None and f[3].isdigit():
            weights[(port, f[1])] = int(f[3])
    return weights


def transitions(metrics: str) -> dict[str, int]:
    """real server address:port -> ipvs_checker_transitions_total."""
    out = {}
    for line in metrics.splitlines():
        if line.startswith("ipvs_checker_transitions_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            out[f"{labels['remote_address']}:{labels['remote_port']}"] = int(float(line.rsplit(" ", 1)[1]))
    return out


def thread_cpu(out: str) -> list[str]:
    """A line per daemon: its CPU over the run by thread name, in cores
    (from threads.csv: each thread's first and last sample); and a line
    of the VM's processes that took the most, by name (processes.csv)."""
    lines = cpu_by_name(f"{out}/threads.csv", "daemon", "tid", "thread", "CPU by thread")
    top = cpu_by_name(f"{out}/processes.csv", None, "pid", "process", "the VM's CPU by process (the 10 busiest)", 10)
    return lines + top


def cpu_by_name(path: str, group: str | None, key: str, name: str, title: str, most: int = 0) -> list[str]:
    """Lines of cores by `name` over the run, summed over the `key`s of a
    name (each from its first to its last sample), one per `group`."""
    seen: dict[tuple[str, str], tuple[float, float, float, float]] = {}
    names: dict[tuple[str, str], str] = {}
    try:
        rows = list(csv.DictReader(open(path)))
    except OSError:
        return []
    for row in rows:
        key_ = (row[group] if group else "", row[key])
        t, cpu = float(row["t"]), float(row["cpu_s"])
        first = seen.get(key_, (t, cpu, t, cpu))
        seen[key_] = (first[0], first[1], t, cpu)
        names[key_] = row[name]
    span = max((last for _, _, last, _ in seen.values()), default=0) - min((t for t, _, _, _ in seen.values()), default=0)
    by: dict[str, dict[str, float]] = {}
    for key_, (_, c0, _, c1) in seen.items():
        named = by.setdefault(key_[0], {})
        named[names[key_]] = named.get(names[key_], 0) + c1 - c0
    out_lines = []
    for grouped, cores in sorted(by.items()):
        if span <= 0:
            continue
        ranked = sorted(cores.items(), key=lambda kv: -kv[1])[: most or None]
        parts = ", ".join(f"{n} {cpu / span:.2f}" for n, cpu in ranked)
        out_lines.append(f"- {grouped + ' ' if grouped else ''}{title}, cores over {span:.0f} s: {parts}")
    return out_lines


def plot(out: str, samples: dict, detections: list) -> list[str]:
    """PNGs made by gnuplot from the data files written here."""
    for name, rows in samples.items():
        with open(f"{out}/samples-{name}.dat", "w") as f:
            f.writelines(f"{t / 60:.3f} {rss / 1024:.2f} {fds} {held}\n" for t, rss, fds, held in rows)
    with open(f"{out}/detections.dat", "w") as f:
        f.writelines(f"{t / 60:.3f} {d:.3f} {b:.1f}\n" for t, d, b in detections)
    d = f"{out}/samples-"
    script = f"""
set terminal pngcairo size 900,420
set grid
set xlabel "minutes"
set yrange [0:*]
set key outside
set output "{out}/soak-rss.png"
set ylabel "RSS (MB)"
plot "{d}exporter.dat" using 1:2 with lines title "ipvs-exporter", "{d}checker.dat" using 1:2 with lines title "ipvs-checker"
set output "{out}/soak-fds.png"
set ylabel "open descriptors"
plot "{d}exporter.dat" using 1:3 with lines title "ipvs-exporter", "{d}checker.dat" using 1:3 with lines title "ipvs-checker", \\
     "{d}exporter.dat" using 1:4 with lines title "ipvs-exporter, held 10 s", "{d}checker.dat" using 1:4 with lines title "ipvs-checker, held 10 s"
set output "{out}/soak-detection.png"
set ylabel "seconds"
plot "{out}/detections.dat" using 1:2 with points pt 7 ps 0.5 title "detection time", "" using 1:3 with steps title "bound"
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return ["soak-rss.png", "soak-fds.png", "soak-detection.png"]


def report(out, duration, seed, events, table, metrics, summary) -> bool:
    lines, ok = [], True

    def verdict(passed: bool, text: str) -> None:
        nonlocal ok
        ok = ok and passed
        lines.append(f"- {'PASS' if passed else 'FAIL'}: {text}")

    samples: dict[str, list] = {}
    for row in csv.DictReader(open(f"{out}/samples.csv")):
        samples.setdefault(row["daemon"], []).append(
            (float(row["t"]), int(row["rss_kb"]), int(row["fds"]), int(row.get("held_fds") or row["fds"]))
        )
    warmup = min(600.0, duration / 5)
    for name, rows in samples.items():
        after = [r for r in rows if r[0] >= warmup]
        if len(after) < 3:
            verdict(False, f"{name}: {len(after)} samples after the warm-up, too few for a slope")
            continue
        window = after[-1][0] - after[0][0]
        for label, i, unit, scale, floor, share in (
            ("RSS", 1, "MB", 1024, 1024, 0.02),
            ("descriptors held 10 s", 3, "fds", 1, 4, 0.05),
        ):
            pts = [(r[0], r[i]) for r in after]
            mean = sum(v for _, v in pts) / len(pts)
            s = slope(pts)
            rise = s * window
            verdict(rise < max(floor, share * mean),
                    f"{name} {label} flat after {warmup:.0f} s warm-up: slope {s * 3600 / scale:+.2f} {unit}/h, "
                    f"rise {rise / scale:+.2f} {unit} over {window:.0f} s, mean {mean / scale:.1f} {unit}, "
                    f"first {pts[0][1] / scale:.1f} last {pts[-1][1] / scale:.1f}")
        fds = [r[2] for r in after]
        lines.append(
            f"  - {name} open descriptors after the warm-up (probes and scrapes in flight included): "
            f"slope {slope([(r[0], r[2]) for r in after]) * 3600:+.2f} fds/h, {min(fds)}-{max(fds)}"
        )
        last = rows[-1]
        lines.append(f"  - {name} at the end: RSS {last[1] / 1024:.1f} MB, {last[2]} fds ({last[3]} held 10 s)")

    # Detection times.
    logged = list(csv.DictReader(open(f"{out}/events.csv")))
    hups = [(float(r["after"]), r["args"]) for r in logged if r["what"] == "hup"]
    zeros = weight_log(f"{out}/checker.log")
    start = float(logged[0]["before"]) if logged else 0.0
    # When each fault was taken away (none: still in place at the end).
    recovered: dict[tuple[int, int], list[float]] = {}
    for event, row in zip(events, logged):
        if event[1] == "recover":
            recovered.setdefault((event[2], event[3]), []).append(float(row["after"]))
    detections, missed, late = [], [], []
    for event, row in zip(events, logged):
        if event[1] != "fail":
            continue
        s, d, fault = event[2:]
        rs = f"{soak.rs_address(d)}:{soak.FIRST_PORT + s}"
        before, after = float(row["before"]), float(row["after"])
        # A weight set to 0 after the fault was gone is not its detection
        # (slack: a probe that failed just before, timed out and counted).
        until = min([t for t in recovered.get((s, d), []) if t > after], default=float("inf")) + 3
        seen = [t for t in zeros.get(rs, []) if before <= t <= until]
        if not seen:
            missed.append(f"{rs} ({fault}, tick {event[0]})")
            continue
        bound = soak.bound_down(soak.CONFIGS[row["config"]])
        reloads = [(h, config) for h, config in hups if before <= h <= seen[0]]
        if reloads:
            h, config = reloads[-1]
            bound = max(bound, soak.bound_down_over_reload(after, h, soak.CONFIGS[config]))
        took = seen[0] - after
        detections.append((after - start, took, bound))
        if took > bound:
            late.append(f"{rs} ({fault}) {took:.1f} s > {bound:.0f} s")
    took = sorted(d for _, d, _ in detections)
    pct = lambda p: took[min(len(took) - 1, int(round(p / 100 * (len(took) - 1))))] if took else float("nan")  # noqa: E731
    verdict(not missed and not late and bool(took),
            f"{len(took)} of {len(took) + len(missed)} failures seen; detection p50 {pct(50):.1f} s, p99 {pct(99):.1f} s, "
            f"max {pct(100):.1f} s; {len(late)} above the bound ({', '.join(late[:5])}); missed: {', '.join(missed[:5]) or 'none'}")

    scraped = {k: sorted(v) for k, v in summary["scrapes"].items()}
    verdict(not summary["errors"],
            f"{len(summary['errors'])} scrape errors in {sum(len(v) for v in scraped.values()) + len(summary['errors'])} scrapes by {soak.CLIENTS} clients"
            + "".join(f"; {k}: {len(v)} scrapes, p50 {v[len(v) // 2]:.2f} s, max {v[-1]:.2f} s" for k, v in scraped.items() if v)
            + (f"; first: {summary['errors'][0]}" if summary["errors"] else ""))
    with open(f"{out}/scrape-errors.txt", "w") as f:
        f.writelines(e + "\n" for e in summary["errors"])

    # Weights and transitions against the schedule.
    failed, expected = set(), {}
    for event in events:
        if event[1] in ("fail", "recover"):
            s, d = event[2], event[3]
            rs = f"{soak.rs_address(d)}:{soak.FIRST_PORT + s}"
            expected[rs] = expected.get(rs, 1) + 1
            (failed.add if event[1] == "fail" else failed.discard)(rs)
    weights = final_weights(table)
    wrong = []
    for s in range(soak.SERVICES):
        port = soak.FIRST_PORT + s
        for d in range(soak.REAL_SERVERS):
            rs = f"{soak.rs_address(d)}:{port}"
            want = 0 if rs in failed else soak.weight(d)
            got = weights.get((port, rs))
            if got != want:
                wrong.append(f"{rs} {got} (want {want})")
    verdict(not wrong, f"{len(weights)} weights read at the end, {len(failed)} of them failed (0); wrong: {len(wrong)} {', '.join(wrong[:5])}")
    counted = transitions(metrics)
    mismatched = []
    for rs, n in counted.items():
        if n != expected.get(rs, 1):
            mismatched.append(f"{rs} {n} (want {expected.get(rs, 1)})")
    verdict(not mismatched and len(counted) == soak.SERVICES * soak.REAL_SERVERS,
            f"transitions of {len(counted)} real servers against the schedule ({sum(counted.values())} counted, "
            f"{sum(expected.get(rs, 1) for rs in counted)} expected); mismatched: {len(mismatched)} {', '.join(mismatched[:5])}")
    late_probes = sum(int(float(line.rsplit(" ", 1)[1])) for line in metrics.splitlines()
               if line.startswith("ipvs_checker_probes_late_total{"))
    lines.append(f"- probes the checker counted late (timed out while it was behind, neither pass nor failure): {late_probes}")
    kinds = {}
    for event in events:
        kinds[event[1]] = kinds.get(event[1], 0) + 1
    lines.append(f"- events played: {', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}; "
                 f"traffic through the VIP: {summary['traffic']['ok']} answered, {summary['traffic']['failed']} failed")
    lines.extend(thread_cpu(out))
    pngs = plot(out, samples, detections)
    head = f"### Soak, {duration / 60:.0f} min, seed {seed}: {'PASS' if ok else 'FAIL'}\n\n"
    text = head + "\n".join(lines) + f"\n\nPlots: {', '.join(pngs)}\n"
    with open(f"{out}/report.md", "w") as f:
        f.write(text)
    print(text, flush=True)
    return ok
