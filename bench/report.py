#!/usr/bin/env python3
"""Turns the JSON files of one bench/run into a Markdown report (stdout).

usage: report.py SCRATCH_DIR COMMAND SESSIONS CONCURRENCY HOLD MESSAGES SIZE
"""
import json
import os
import sys

TARGET_CEILING = 0.75   # proxied sessions/s >= 75% of the crypto ceiling
TARGET_CPU = 0.5        # livery CPU/session <= 0.5 x nginx's
TARGET_RESUME = 1.5     # sessions/s with relay-leg resumption >= 1.5 x without
TARGET_RSS_KIB = 160    # RSS per live proxied session
TARGET_RECORDS = 0.03   # CPU per session with records (json, to a file) <= 1.03 x without
TARGET_LOCAL_CPU = 0.5      # local auth + pool: livery CPU/session <= 0.5 x nginx's
TARGET_LOCAL_SPS = 2.5      # ... sessions/s >= 2.5 x nginx's
TARGET_LOCAL_CEILING = 0.75  # ... capacity (1 / CPU per session) >= 75% of the client leg's ceiling


def load(d, name):
    path = os.path.join(d, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def machine(d):
    out = {}
    with open(os.path.join(d, "machine.txt")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            out[k] = v
    return out


def errors(run):
    e = run.get("errors", {})
    return ", ".join(f"{k}: {v}" for k, v in e.items()) if e else "none"


def mem_per_session(mem):
    if not mem or not mem["held"]:
        return None, None
    held = mem["held"]
    return ((mem["rss_during_kib"] - mem["rss_before_kib"]) / held,
            (mem["pss_during_kib"] - mem["pss_before_kib"]) / held)


def row(label, run, cpu, mem, runs=None):
    if run is None:
        return None
    ok = run["sessions_ok"]
    cpu_ms = cpu["cpu_s"] * 1000 / ok if cpu and ok else None
    sink_ms = cpu["sink_cpu_s"] * 1000 / ok if cpu and ok and "sink_cpu_s" in cpu else None
    busy = cpu.get("machine_busy") if cpu else None
    rss, pss = mem_per_session(mem)
    return {
        "label": label,
        "sps": run["sessions_per_s"],
        "cpu_ms": cpu_ms,
        "sink_ms": sink_ms,
        "busy": busy,
        "rss": rss,
        "pss": pss,
        "tls": run["tls_handshake_ms"]["p50"],
        "banner": run["banner_ms"],
        "session": run["session_ms"],
        "ok": ok,
        "failed": run["sessions_failed"],
        "errors": errors(run),
        "held": mem["held"] if mem else None,
        "runs": runs,
    }


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def table(rows):
    out = ["| setup | sessions/s | proxy CPU ms/session | RSS KiB/live session (PSS) | "
           "TLS handshake p50 ms | banner p50/p99 ms | session p50/p99 ms | ok/failed | sink CPU ms/session | "
           "machine busy |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        mem = "–" if r["rss"] is None else f"{r['rss']:.1f} ({r['pss']:.1f}) at C={r['held']}"
        sps = f"{r['sps']:.0f}"
        cpu = fmt(r["cpu_ms"], ".3f")
        if r["runs"] and len(r["runs"]["sessions_per_s"]) > 1:
            sps += " (" + " / ".join(f"{x:.0f}" for x in r["runs"]["sessions_per_s"]) + ")"
            if r["cpu_ms"] is not None:
                cpu += " (" + " / ".join(f"{x:.3f}" for x in r["runs"]["cpu_ms_per_session"]) + ")"
        out.append(f"| {r['label']} | {sps} | {cpu} | {mem} | "
                   f"{r['tls']:.2f} | {r['banner']['p50']:.2f}/{r['banner']['p99']:.2f} | "
                   f"{r['session']['p50']:.1f}/{r['session']['p99']:.1f} | {r['ok']}/{r['failed']} | "
                   f"{fmt(r['sink_ms'], '.3f')} | {fmt(r['busy'] * 100 if r['busy'] is not None else None, '.0f')}% |")
    return "\n".join(out)


def verdict(ok):
    return "met" if ok else "**missed**"


def targets(d, tag, rows_by, hs, ngx):
    res, nores = rows_by.get(f"livery-{tag}-res"), rows_by.get(f"livery-{tag}-nores")
    ceiling = hs["ceiling_sessions_per_sec"] if hs else None
    lines = [f"Targets, livery with {tag} wolfSSL:", ""]
    if res and ceiling:
        r = res["sps"] / ceiling
        cap = 1000 / res["cpu_ms"] if res["cpu_ms"] else None
        lines.append(f"- sessions/s vs the crypto ceiling ({ceiling:.0f}/s per core, hsbench "
                     f"`{hs['ceiling_case']}`): measured {res['sps']:.0f}/s = {100 * r:.0f}% "
                     f"(target ≥ {100 * TARGET_CEILING:.0f}%: {verdict(r >= TARGET_CEILING)}); "
                     f"livery's own capacity on one core, 1 / CPU per session = {fmt(cap, '.0f')}/s = "
                     f"{fmt(cap / ceiling * 100 if cap else None, '.0f')}% of the ceiling "
                     f"({verdict(cap is not None and cap / ceiling >= TARGET_CEILING)})")
    if res and ngx and res["cpu_ms"] and ngx["cpu_ms"]:
        r = res["cpu_ms"] / ngx["cpu_ms"]
        lines.append(f"- CPU per session vs nginx: {res['cpu_ms']:.3f} / {ngx['cpu_ms']:.3f} ms = "
                     f"{r:.2f}× (target ≤ {TARGET_CPU}×: {verdict(r <= TARGET_CPU)}); note livery also does "
                     f"the verified TLS relay leg that nginx cannot")
    tls_res, tls_nores = load(d, f"livery-{tag}-res.relaytls.json"), load(d, f"livery-{tag}-nores.relaytls.json")
    if tls_res and tls_nores and tls_res["handshakes"] and tls_nores["handshakes"]:
        lines.append(f"- relay legs that resumed a TLS session (counted by the sink): "
                     f"{tls_res['resumed']} of {tls_res['handshakes']} with resumption on, "
                     f"{tls_nores['resumed']} of {tls_nores['handshakes']} with it off")
    if res and nores:
        r = res["sps"] / nores["sps"]
        c = (nores["cpu_ms"] / res["cpu_ms"]) if res["cpu_ms"] and nores["cpu_ms"] else None
        lines.append(f"- relay-leg resumption on/off: {res['sps']:.0f} / {nores['sps']:.0f} sessions/s = "
                     f"{r:.2f}× (target ≥ {TARGET_RESUME}×: {verdict(r >= TARGET_RESUME)}); "
                     f"livery CPU per session off/on = {fmt(c, '.2f')}×")
    lines += local_targets(d, tag, rows_by, hs, ngx)
    if res and res["rss"] is not None:
        lines.append(f"- RSS per live proxied session: {res['rss']:.1f} KiB at C={res['held']} "
                     f"(target ≤ {TARGET_RSS_KIB} KiB: {verdict(res['rss'] <= TARGET_RSS_KIB)})")
    return "\n".join(lines) if len(lines) > 2 else ""  # nothing to judge (--records-only)


def metric(text, name, **labels):
    """The sum of a Prometheus text sample's values over series that carry these labels."""
    total = 0.0
    for ln in (text or "").splitlines():
        if ln.startswith(name + "{") and all(f'{k}="{v}"' in ln for k, v in labels.items()):
            total += float(ln.rsplit(" ", 1)[1])
    return total


def local_targets(d, tag, rows_by, hs, ngx):
    """Issue 12's targets for the setup "livery, local auth, pooled relay"."""
    loc = rows_by.get(f"livery-{tag}-local")
    if not loc:
        return []
    lines = []
    if ngx and loc["cpu_ms"] and ngx["cpu_ms"]:
        r = loc["cpu_ms"] / ngx["cpu_ms"]
        lines.append(f"- local auth + pool, CPU per session vs nginx: {loc['cpu_ms']:.3f} / {ngx['cpu_ms']:.3f} ms = "
                     f"{r:.2f}× (target ≤ {TARGET_LOCAL_CPU}×: {verdict(r <= TARGET_LOCAL_CPU)})")
    if ngx and ngx["sps"]:
        r = loc["sps"] / ngx["sps"]
        lines.append(f"- local auth + pool, sessions/s vs nginx: {loc['sps']:.0f} / {ngx['sps']:.0f} = {r:.2f}× "
                     f"(target ≥ {TARGET_LOCAL_SPS}×: {verdict(r >= TARGET_LOCAL_SPS)})")
    case = [c for c in (hs or {}).get("cases", []) if c["case"] == (hs or {}).get("ceiling_case")]
    if case and loc["cpu_ms"]:
        client_leg = 1000 / case[0]["server_ms"]
        cap = 1000 / loc["cpu_ms"]
        lines.append(f"- local auth + pool, capacity 1 / CPU per session = {cap:.0f}/s vs the client leg's crypto "
                     f"ceiling (one server handshake, `{case[0]['case']}`) {client_leg:.0f}/s = "
                     f"{100 * cap / client_leg:.0f}% (target ≥ {100 * TARGET_LOCAL_CEILING:.0f}%: "
                     f"{verdict(cap / client_leg >= TARGET_LOCAL_CEILING)})")
    path = os.path.join(d, f"livery-{tag}-local.metrics")
    text = open(path).read() if os.path.exists(path) else ""
    hit, miss = metric(text, "livery_relay_pool_checkouts_total", result="hit"), \
        metric(text, "livery_relay_pool_checkouts_total", result="miss")
    ok, cached, failed = (metric(text, "livery_local_auth_total", result=r) for r in ("ok", "cached", "failed"))
    if hit + miss:
        lines.append(f"- relay pool: {hit:.0f} hits, {miss:.0f} misses ({100 * hit / (hit + miss):.1f}% hits), "
                     f"{metric(text, 'livery_relay_pool_opened_total'):.0f} relay connections opened")
    if ok + cached + failed:
        lines.append(f"- local-auth verification cache: {cached:.0f} of {ok + cached + failed:.0f} checks answered "
                     f"from the cache ({100 * cached / (ok + cached + failed):.1f}%), {ok:.0f} hashed, "
                     f"{failed:.0f} failed")
    h = load(d, f"livery-{tag}-local.hash.json")
    if h:
        lines.append(f"- local-auth hash cost: {h['ms']:.1f} ms CPU per check ({h['hash']}..., libxcrypt's default "
                     f"cost, as `livery passwd` makes them), paid on the thread pool, about once per "
                     f"auth_cache_ttl per user")
    return lines


def hs_table(hss):
    out = ["| wolfSSL build | case | server ms | verifying client ms | ceiling sessions/s/core | negotiated |",
           "|---|---|---:|---:|---:|---|"]
    for tag, hs in hss:
        for c in hs["cases"]:
            s = c["server_ms"] + c["client_ms"]
            out.append(f"| {tag} ({hs['math']}) | {c['case']} | {c['server_ms']:.3f} | {c['client_ms']:.3f} | "
                       f"{1000 / s:.0f} | {c['version']} {c['cipher']} {c['group']}"
                       f"{' resumed' if c['resumed'] else ''} |")
    return "\n".join(out)


def median(row):
    xs = sorted(row["runs"]["cpu_ms_per_session"]) if row["runs"] else [row["cpu_ms"]]
    return (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2]) / 2


def comparison(tag, rows_by, rev):
    """This tree against livery at revision rev (bench/run --compare), same run and sink."""
    lines = []
    for kind, what in (("res", "resumption on"), ("nores", "resumption off")):
        now, then = rows_by.get(f"livery-{tag}-ab-{kind}"), rows_by.get(f"livery-{tag}-rev-{kind}")
        if not now or not then or not now["cpu_ms"] or not then["cpu_ms"]:
            continue
        med_now, med_then = median(now), median(then)
        lines.append(f"- {tag} wolfSSL, relay {what}: CPU per session {now['cpu_ms']:.3f} ms now vs "
                     f"{then['cpu_ms']:.3f} ms at {rev} ({100 * (now['cpu_ms'] / then['cpu_ms'] - 1):+.0f}%; "
                     f"medians of all runs {med_now:.3f} vs {med_then:.3f}, "
                     f"{100 * (med_now / med_then - 1):+.0f}%); sessions/s {now['sps']:.0f} vs {then['sps']:.0f} "
                     f"({100 * (now['sps'] / then['sps'] - 1):+.0f}%)")
    return lines


def records(d, tag, rows_by):
    """What writing the records costs (bench/run --records): the same build, records on and off,
    side by side, throughput runs interleaved."""
    on, off = rows_by.get(f"livery-{tag}-records-on"), rows_by.get(f"livery-{tag}-records-off")
    if not on or not off or not on["cpu_ms"] or not off["cpu_ms"]:
        return []
    con, coff = load(d, f"livery-{tag}-records-on.count.json"), load(d, f"livery-{tag}-records-off.count.json")
    med_on, med_off = median(on), median(off)
    r = med_on / med_off - 1
    lines = [f"- {tag} wolfSSL: CPU per session with records {on['cpu_ms']:.3f} ms, without {off['cpu_ms']:.3f} ms "
             f"(best runs, {100 * (on['cpu_ms'] / off['cpu_ms'] - 1):+.1f}%); medians of all runs "
             f"{med_on:.3f} vs {med_off:.3f} ms, {100 * r:+.1f}% (target ≤ +{100 * TARGET_RECORDS:.0f}%: "
             f"{verdict(r <= TARGET_RECORDS)}); sessions/s {on['sps']:.0f} vs {off['sps']:.0f}"]
    if on["runs"] and off["runs"]:
        pairs = zip(on["runs"]["cpu_ms_per_session"], off["runs"]["cpu_ms_per_session"])
        lines.append("- run by run (each \"on\" run against the \"off\" run right after it): " +
                     " / ".join(f"{100 * (a / b - 1):+.0f}%" for a, b in pairs if b))
    if con and coff:
        lines.append(f"- records written: {con['records']} for {con['sessions']} sessions with records on, "
                     f"{coff['records']} for {coff['sessions']} with `log_format = \"none\"`")
    return lines


def main():
    d, cmd, sessions, conc, hold, msgs, size = sys.argv[1:8]
    m = machine(d)
    compare = None
    if os.path.exists(os.path.join(d, "compare.txt")):
        with open(os.path.join(d, "compare.txt")) as f:
            compare = f.read().strip()
    rev = compare.split()[0] if compare else None
    tags = [t for t in ("debian", "opt") if os.path.exists(os.path.join(d, f"hsbench-{t}.json"))]
    rows, rows_by, hss = [], {}, []
    ngx = row("nginx mail proxy (OpenSSL), 1 worker", load(d, "nginx.json"), load(d, "nginx.cpu.json"),
              load(d, "nginx-hold.mem.json"), load(d, "nginx.runs.json"))
    for tag in tags:
        hs = load(d, f"hsbench-{tag}.json")
        hss.append((tag, hs))
        setups = [(f"baseline-{tag}", f"baseline: loadgen → sink ({tag} wolfSSL)"),
                  (f"livery-{tag}-res", f"livery ({tag} wolfSSL), relay resumption on"),
                  (f"livery-{tag}-nores", f"livery ({tag} wolfSSL), relay resumption off"),
                  (f"livery-{tag}-local", f"livery ({tag} wolfSSL), local auth, pooled relay")]
        if rev:
            for kind, what in (("res", "on"), ("nores", "off")):
                setups += [(f"livery-{tag}-ab-{kind}", f"A/B: livery ({tag} wolfSSL), relay resumption {what}"),
                           (f"livery-{tag}-rev-{kind}", f"A/B: livery at {rev} ({tag} wolfSSL), relay resumption {what}")]
        setups += [(f"livery-{tag}-records-on", f"records A/B: livery ({tag} wolfSSL), records json to a file"),
                   (f"livery-{tag}-records-off", f"records A/B: livery ({tag} wolfSSL), `log_format = \"none\"`")]
        for name, label in setups:
            r = row(label, load(d, name + ".json"), load(d, name + ".cpu.json"), load(d, name + "-hold.mem.json"),
                    load(d, name + ".runs.json"))
            if r:
                if name.startswith("baseline"):
                    r["cpu_ms"] = None  # the sink is not a proxy; its CPU is not comparable
                rows.append(r)
                rows_by[name] = r
    if ngx:
        rows.append(ngx)
    auth = load(d, "authhttp.cpu.json")

    print("# livery benchmark\n")
    print(f"Command: `{cmd}`\n")
    print(f"Machine: {m.get('nproc')} CPUs ({m.get('cpu')}), {m.get('mem')} RAM, Linux {m.get('kernel')}; "
          f"nginx {m.get('nginx')} with OpenSSL {m.get('openssl')}; Debian libwolfssl {m.get('wolfssl_debian')}. "
          f"Load average at start {m.get('loadavg_start')}, at end {m.get('loadavg_end')}.\n")
    print(f"Load: STARTTLS sessions with SNI (verified certificate, X25519 key share), EHLO, AUTH PLAIN, "
          f"{msgs} message(s) of {size} bytes, QUIT; {sessions} sessions at concurrency {conc} per throughput "
          f"run, full client handshakes (no client-side resumption). Memory: {hold} sessions held idle after "
          f"AUTH, RSS delta of the proxy's processes / sessions held. livery: `workers = 1`; nginx: "
          f"`worker_processes 1` (CPU and memory: master + worker).\n")
    print(table(rows))
    print()
    if any(r["runs"] and len(r["runs"]["sessions_per_s"]) > 1 for r in rows):
        print("Each throughput figure is the best of the runs in parentheses (CPU per session of the same "
              "runs alongside); the machine is shared, so the best run is the least disturbed one. "
              "The sink and machine columns belong to the best run: the load generator, the proxy and the "
              "sink share the machine's CPUs, so sessions/s is bounded by all three together (machine busy "
              "near 100% means the box, not the proxy, was the limit); the proxy's CPU per session is the "
              "number that belongs to the proxy alone.\n")
    if auth and ngx:
        print(f"nginx's auth_http responder (bench/authhttp.py, not counted above) used "
              f"{auth['cpu_s'] * 1000 / max(ngx['ok'], 1):.3f} ms CPU per session.\n")
    print("Handshake costs (livery-hsbench, in memory, CPU time per handshake):\n")
    print(hs_table(hss))
    print()
    for tag, hs in hss:
        t = targets(d, tag, rows_by, hs, ngx)
        if t:
            print(t)
            print()
    if compare:
        lines = [x for tag, _ in hss for x in comparison(tag, rows_by, rev)]
        if lines:
            print(f"This tree against livery at `{compare}` (`--compare`: both running at once on the same "
                  f"sink, throughput runs interleaved A B A B ..., the best of each; CPU of the same runs):\n")
            print("\n".join(lines))
            print()
    lines = [x for tag, _ in hss for x in records(d, tag, rows_by)]
    if lines:
        print("What the records cost (`--records`: the same build twice at once on the same sink, one writing "
              "its records as JSON to a `log_file`, one with `log_format = \"none\"`, throughput runs "
              "interleaved A B A B ...; resumption on):\n")
        print("\n".join(lines))
        print()
    sysfiles = sorted(f for f in os.listdir(d) if f.startswith("sys-") and f.endswith(".txt"))
    if sysfiles:
        counts = {}
        for f in sysfiles:
            with open(os.path.join(d, f)) as fh:
                counts[f[4:-4]] = dict((ln.split()[0], float(ln.split()[1])) for ln in fh if ln.strip())
        names = sorted({k for c in counts.values() for k in c},
                       key=lambda k: -max(c.get(k, 0) for c in counts.values()))
        print("System calls per session (`strace -c -f` on the proxy during an extra run of 300 sessions):\n")
        print("| syscall | " + " | ".join(counts) + " |")
        print("|---|" + "---:|" * len(counts))
        for k in names:
            print(f"| {k} | " + " | ".join(fmt(c.get(k), ".1f") for c in counts.values()) + " |")
        print()
    profiles = sorted(f for f in os.listdir(d) if f.startswith("perf-") and f.endswith(".txt"))
    if profiles:
        print("Profiles (`perf record --call-graph dwarf` of the proxy's processes during an extra, unmeasured "
              "run of 1000 sessions):\n")
        for p in profiles:
            with open(os.path.join(d, p)) as f:
                body = f.read().rstrip()
            print(f"{p[5:-4]}:\n\n```\n{body}\n```\n")
    fails = [r for r in rows if r["failed"]]
    if fails:
        print("Errors: " + "; ".join(f"{r['label']}: {r['errors']}" for r in fails) + "\n")


if __name__ == "__main__":
    main()
