#!/usr/bin/env python3
"""Turn the criterion output of `cargo bench -p smqtt-benches --bench fame` into Markdown tables (stdout) and,
with `--svg DIR`, two hand-made SVG plots (DIR/decrypt.svg, DIR/keygen-encrypt.svg).

Standard library only. Reads every `target/criterion/**/new/estimates.json` (the most recent run of each
benchmark) and uses the `mean.point_estimate` (nanoseconds) by default; `--stat median` switches to the median.
The benchmark's identity comes from the sibling `benchmark.json` (group_id / function_id / value_str) and falls
back to the directory names <group>/<function>[/<param>].

    cargo bench -p smqtt-benches --bench fame && python3 scripts/bench-report.py --svg docs/perf
"""

import argparse
import json
import math
import os
import sys

SIZES = [1, 5, 10, 20, 50, 100]
NS_PER_MS = 1e6
# A measurement whose standard deviation exceeds this fraction of its mean is marked with a dagger.
NOISY_REL_SD = 0.15
NOISY = set()


def load(criterion_dir, stat):
    """{(group, function, param-or-None): nanoseconds}"""
    out = {}
    if not os.path.isdir(criterion_dir):
        return out
    for root, _dirs, files in os.walk(criterion_dir):
        if os.path.basename(root) != "new" or "estimates.json" not in files:
            continue
        try:
            with open(os.path.join(root, "estimates.json")) as f:
                est = json.load(f)
            ns = float(est[stat]["point_estimate"])
            mean = float(est["mean"]["point_estimate"])
            rel_sd = float(est["std_dev"]["point_estimate"]) / mean if mean > 0 else 0.0
        except (OSError, ValueError, KeyError, TypeError):
            continue
        key = None
        meta = os.path.join(root, "benchmark.json")
        if os.path.exists(meta):
            try:
                with open(meta) as f:
                    m = json.load(f)
                fid = m.get("function_id")
                val = m.get("value_str")
                if fid is None:  # `group.bench_function(id)` without a group-level function id
                    fid, val = val, None
                key = (m["group_id"], fid, val)
            except (OSError, ValueError, KeyError, TypeError):
                key = None
        if key is None:
            parts = os.path.relpath(os.path.dirname(root), criterion_dir).split(os.sep)
            if len(parts) == 2:
                key = (parts[0], parts[1], None)
            elif len(parts) == 3:
                key = (parts[0], parts[1], parts[2])
            else:
                continue
        out[key] = ns
        NOISY.update({key} if rel_sd > NOISY_REL_SD else set())
    return out


def get_ms(data, group, function, param=None):
    ns = data.get((group, function, None if param is None else str(param)))
    return None if ns is None else ns / NS_PER_MS


def cell(data, group, function, param=None):
    """A table cell for one measurement, daggered when noisy."""
    v = get_ms(data, group, function, param)
    mark = "†" if (group, function, None if param is None else str(param)) in NOISY else ""
    return fmt_ms(v) + mark


def fmt_ms(v):
    if v is None:
        return "—"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_ratio(num, den):
    if num is None or den is None or den == 0:
        return "—"
    r = num / den
    return f"{r:.1f}x" if r >= 10 else f"{r:.2f}x"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def sizes_present(data, groups):
    found = set()
    for (g, _f, p) in data:
        if g in groups and p is not None:
            try:
                found.add(int(p))
            except ValueError:
                pass
    return sorted(found) or SIZES


def report(data, stat):
    out = []
    floor = get_ms(data, "floor", "multi_pairing_6")
    sizes = sizes_present(data, {"keygen", "encrypt", "decrypt"})

    out.append(f"All times in ms, criterion `{stat}` point estimate of the latest run.")
    out.append("")
    out.append("**Floor and setup**")
    out.append("")
    s_setup = get_ms(data, "setup", "smqtt")
    r_setup = get_ms(data, "setup", "rabe")
    out.append(
        table(
            ["benchmark", "smqtt ms", "rabe ms", "rabe/smqtt"],
            [
                ["floor: 6-pair multi-pairing (arkworks BLS12-381)", cell(data, "floor", "multi_pairing_6"), "", ""],
                ["setup", cell(data, "setup", "smqtt"), cell(data, "setup", "rabe"), fmt_ratio(r_setup, s_setup)],
            ],
        )
    )
    out.append("")

    for group, label in (("keygen", "Key generation (N attributes)"), ("encrypt", "Encryption (AND of N attributes)")):
        out.append(f"**{label}**")
        out.append("")
        rows = []
        for n in sizes:
            s = get_ms(data, group, "smqtt", n)
            r = get_ms(data, group, "rabe", n)
            rows.append([str(n), cell(data, group, "smqtt", n), cell(data, group, "rabe", n), fmt_ratio(r, s)])
        out.append(table(["N", "smqtt ms", "rabe ms", "rabe/smqtt"], rows))
        out.append("")

    out.append("**Decryption (policy of N rows; key holds all N attributes)**")
    out.append("")
    rows = []
    for n in sizes:
        af = get_ms(data, "decrypt", "smqtt_and_full", n)
        of = get_ms(data, "decrypt", "smqtt_or_full", n)
        dc = get_ms(data, "decrypt", "smqtt_and_decaps", n)
        po = get_ms(data, "decrypt", "smqtt_and_pairing_only", n)
        r = get_ms(data, "decrypt", "rabe", n)
        cca = fmt_ms(dc - po) if dc is not None and po is not None else "—"
        rows.append(
            [
                str(n),
                cell(data, "decrypt", "smqtt_and_full", n),
                cell(data, "decrypt", "smqtt_or_full", n),
                fmt_ratio(af, floor),
                fmt_ratio(of, floor),
                cell(data, "decrypt", "rabe", n),
                fmt_ratio(r, af),
                cca,
            ]
        )
    out.append(
        table(
            [
                "N",
                "smqtt AND full ms",
                "smqtt OR full ms",
                "AND full/floor",
                "OR full/floor",
                "rabe ms (AND)",
                "rabe/smqtt AND",
                "CCA check ms (decaps − pairing_only)",
            ],
            rows,
        )
    )
    out.append("")
    a10 = get_ms(data, "decrypt", "smqtt_and_full", 10)
    a100 = get_ms(data, "decrypt", "smqtt_and_full", 100)
    if a10 is not None and a100 is not None:
        slope = (a100 - a10) / 90.0
        out.append(
            f"AND full decryption costs {slope * 1000:.1f} µs per further policy row "
            f"(slope between N=10 and N=100: ({fmt_ms(a100)} − {fmt_ms(a10)}) ms / 90)."
        )
    out.append("")
    out.append(
        "*full* = decode and validate every point, LSSS, 6-pair multi-pairing, CCA (FO) re-encryption check, KDF; "
        "*decaps* = the same on an already decoded capsule; *pairing_only* = decaps without the CCA check. "
        "rabe decrypts an AND policy (nested binary, as rabe 0.4 requires)."
    )
    if NOISY:
        out.append("")
        out.append(f"† standard deviation above {NOISY_REL_SD:.0%} of the mean (noisy sample).")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------------- SVG
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]
DASHES = ["", "6,4", "2,3", "8,3,2,3", "", "4,2"]


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_plot(path, title, series, hlines=(), width=760, height=470):
    """series: [(label, [(n, ms), ...])]; hlines: [(label, ms)]. Log x, log y."""
    pts = [v for _l, s in series for (_n, v) in s if v is not None and v > 0]
    pts += [v for _l, v in hlines if v is not None and v > 0]
    ns = [n for _l, s in series for (n, v) in s if v is not None]
    if not pts or not ns:
        return False
    ml, mr, mt, mb = 72, 220, 44, 56
    pw, ph = width - ml - mr, height - mt - mb
    ylo = 10 ** math.floor(math.log10(min(pts)))
    yhi = 10 ** math.ceil(math.log10(max(pts)))
    if yhi <= ylo:
        yhi = ylo * 10
    xlo, xhi = min(ns), max(ns)
    if xhi <= xlo:
        xhi = xlo * 10

    def X(n):
        return ml + (math.log10(n) - math.log10(xlo)) / (math.log10(xhi) - math.log10(xlo)) * pw

    def Y(v):
        return mt + ph - (math.log10(v) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo)) * ph

    e = []
    e.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">')
    e.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>')
    e.append(f'<text x="{ml + pw / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{esc(title)}</text>')
    # y grid: decades (labelled) and 2x/5x minor lines
    d = ylo
    while d <= yhi * 1.0001:
        y = Y(d)
        e.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{ml + pw}" y2="{y:.1f}" stroke="#ccc"/>')
        lab = f"{d:g}"
        e.append(f'<text x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end">{lab}</text>')
        for m in (2, 5):
            if d * m < yhi:
                ym = Y(d * m)
                e.append(f'<line x1="{ml}" y1="{ym:.1f}" x2="{ml + pw}" y2="{ym:.1f}" stroke="#eee"/>')
                e.append(f'<text x="{ml - 6}" y="{ym + 4:.1f}" text-anchor="end" fill="#888" font-size="10">{d * m:g}</text>')
        d *= 10
    # x ticks at measured N
    for n in sorted(set(ns)):
        x = X(n)
        e.append(f'<line x1="{x:.1f}" y1="{mt}" x2="{x:.1f}" y2="{mt + ph}" stroke="#eee"/>')
        e.append(f'<text x="{x:.1f}" y="{mt + ph + 18}" text-anchor="middle">{n}</text>')
    e.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    e.append(f'<text x="{ml + pw / 2}" y="{height - 12}" text-anchor="middle">N (attributes / policy rows, log scale)</text>')
    e.append(f'<text transform="translate(18,{mt + ph / 2}) rotate(-90)" text-anchor="middle">time, ms (log scale)</text>')
    legend = []
    for i, (label, v) in enumerate(hlines):
        if v is None or v <= 0:
            continue
        y = Y(v)
        e.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{ml + pw}" y2="{y:.1f}" stroke="#000" stroke-dasharray="3,3"/>')
        legend.append((label, "#000", "3,3", False))
    for i, (label, s) in enumerate(series):
        color, dash = PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)]
        pp = [(X(n), Y(v)) for n, v in s if v is not None and v > 0]
        if not pp:
            continue
        da = f' stroke-dasharray="{dash}"' if dash else ""
        e.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{da} points="'
                 + " ".join(f"{x:.1f},{y:.1f}" for x, y in pp) + '"/>')
        for x, y in pp:
            e.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
        legend.append((label, color, dash, True))
    lx, ly = ml + pw + 14, mt + 8
    for j, (label, color, dash, marker) in enumerate(legend):
        y = ly + j * 20
        da = f' stroke-dasharray="{dash}"' if dash else ""
        e.append(f'<line x1="{lx}" y1="{y}" x2="{lx + 26}" y2="{y}" stroke="{color}" stroke-width="2"{da}/>')
        if marker:
            e.append(f'<circle cx="{lx + 13}" cy="{y}" r="3" fill="{color}"/>')
        e.append(f'<text x="{lx + 32}" y="{y + 4}">{esc(label)}</text>')
    e.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(e) + "\n")
    return True


def write_svgs(data, outdir):
    os.makedirs(outdir, exist_ok=True)
    sizes = sizes_present(data, {"keygen", "encrypt", "decrypt"})

    def ser(group, function):
        return [(n, get_ms(data, group, function, n)) for n in sizes]

    floor = get_ms(data, "floor", "multi_pairing_6")
    written = []
    p = os.path.join(outdir, "decrypt.svg")
    if svg_plot(
        p,
        "Decryption time vs policy rows",
        [
            ("smqtt AND full", ser("decrypt", "smqtt_and_full")),
            ("smqtt OR full", ser("decrypt", "smqtt_or_full")),
            ("smqtt AND decaps", ser("decrypt", "smqtt_and_decaps")),
            ("smqtt AND pairing only", ser("decrypt", "smqtt_and_pairing_only")),
            ("rabe AC17 (AND)", ser("decrypt", "rabe")),
        ],
        hlines=[("floor: 6-pair pairing", floor)],
    ):
        written.append(p)
    p = os.path.join(outdir, "keygen-encrypt.svg")
    if svg_plot(
        p,
        "Key generation and encryption vs attributes",
        [
            ("smqtt keygen", ser("keygen", "smqtt")),
            ("rabe keygen", ser("keygen", "rabe")),
            ("smqtt encrypt", ser("encrypt", "smqtt")),
            ("rabe encrypt", ser("encrypt", "rabe")),
        ],
    ):
        written.append(p)
    return written


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--criterion-dir", default=os.path.join(here, "..", "target", "criterion"),
                    help="criterion output directory (default: target/criterion of this workspace)")
    ap.add_argument("--stat", choices=["mean", "median"], default="mean",
                    help="which criterion point estimate to report (default: mean)")
    ap.add_argument("--svg", metavar="DIR", help="also write DIR/decrypt.svg and DIR/keygen-encrypt.svg")
    args = ap.parse_args()

    data = load(os.path.normpath(args.criterion_dir), args.stat)
    if not data:
        print(f"bench-report: no criterion data under {os.path.normpath(args.criterion_dir)} "
              "(run `cargo bench -p smqtt-benches --bench fame` first)", file=sys.stderr)
        return 2
    sys.stdout.write(report(data, args.stat))
    if args.svg:
        for p in write_svgs(data, args.svg):
            print(f"bench-report: wrote {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
