"""The accuracy assessment as a standalone HTML page a user can paste into a paper.

Tables of accuracy and area with their 95% intervals, a chart of mapped against estimated area, the error matrix
as a heat map (area proportions, sample counts beside them), and the method in words with its references. No
script and no external file: the page opens anywhere and prints as it shows.
"""
from __future__ import annotations

import html
import math

from ..data.accuracy import Z_95

DESIGN_WORDS = {
    "map_classes": "a stratified random sample with the map classes as strata",
    "strata": "a stratified random sample whose strata (a STRATA raster) differ from the map classes",
    "simple_random": "a simple random sample (one stratum, the whole map)",
}
REFERENCES = (
    "Olofsson, P., Foody, G. M., Herold, M., Stehman, S. V., Woodcock, C. E., Wulder, M. A. (2014). Good practices "
    "for estimating area and assessing accuracy of land change. <i>Remote Sensing of Environment</i> 148, 42–57.",
    "Stehman, S. V. (2014). Estimating area and map accuracy for stratified random sampling when the strata are "
    "different from the map classes. <i>International Journal of Remote Sensing</i> 35, 4923–4939.",
    "Cochran, W. G. (1977). <i>Sampling Techniques</i>, 3rd ed. Wiley.",
)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _pm(value: float | None, ci: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f} ± {_fmt(ci, digits)}"


def _area_chart(classes: list[dict], hectares: bool) -> str:
    """Horizontal bars per class: the mapped area, and the estimated area with its 95% interval as a whisker."""
    unit = 1e4 if hectares else 1.0
    key_map, key_est, key_ci = ("map_area_m2", "area_m2", "area_m2_ci") if hectares else \
        ("map_share", "area_proportion", "area_proportion_ci")
    top = max([max((c.get(key_map) or 0), (c.get(key_est) or 0) + (c.get(key_ci) or 0)) for c in classes] + [1e-12])
    label_w, bar_w, row_h = 190, 420, 34
    height = row_h * len(classes) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 130}" height="{height}" '
             'font-family="sans-serif" font-size="12">']
    for i, c in enumerate(classes):
        y = 10 + i * row_h
        mapped, est, ci = (c.get(k) or 0.0 for k in (key_map, key_est, key_ci))
        scale = bar_w / top
        parts.append(f'<text x="{label_w - 6}" y="{y + 17}" text-anchor="end">{html.escape(c["name"])}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{mapped * scale:.1f}" height="10" fill="#bdbdbd"/>')
        parts.append(f'<rect x="{label_w}" y="{y + 14}" width="{est * scale:.1f}" height="10" fill="#3182bd"/>')
        low, high = max(est - ci, 0) * scale + label_w, (est + ci) * scale + label_w
        parts.append(f'<line x1="{low:.1f}" x2="{high:.1f}" y1="{y + 19}" y2="{y + 19}" stroke="#08306b" '
                     'stroke-width="1.5"/>')
        for x in (low, high):
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y + 14}" y2="{y + 24}" stroke="#08306b"/>')
        value = f"{est / unit:,.1f} ± {ci / unit:,.1f} ha" if hectares else f"{est:.1%} ± {ci:.1%}"
        parts.append(f'<text x="{high + 6:.1f}" y="{y + 23}" fill="#08306b">{value}</text>')
    legend_y = height - 12
    parts.append(f'<rect x="{label_w}" y="{legend_y - 9}" width="12" height="10" fill="#bdbdbd"/>'
                 f'<text x="{label_w + 16}" y="{legend_y}">mapped</text>'
                 f'<rect x="{label_w + 90}" y="{legend_y - 9}" width="12" height="10" fill="#3182bd"/>'
                 f'<text x="{label_w + 106}" y="{legend_y}">estimated, with its 95% interval</text></svg>')
    return "".join(parts)


def _heat_map(data: dict) -> str:
    """The error matrix: area proportions shaded by size, sample counts in brackets; map classes are rows."""
    classes, props, counts = data["classes"], data["error_matrix_proportions"], data["error_matrix_counts"]
    top = max(max(row) for row in props) or 1.0
    head = "".join(f"<th>{html.escape(c['name'])}</th>" for c in classes)
    rows = []
    for i, c in enumerate(classes):
        cells = []
        for j, p in enumerate(props[i]):
            shade = math.sqrt(p / top)
            colour = f"rgba(8,81,156,{shade:.3f})"
            ink = "#fff" if shade > 0.55 else "#000"
            mark = " class=diag" if i == j else ""
            cells.append(f'<td{mark} style="background:{colour};color:{ink}">{p:.4f}<br>'
                         f'<small>({counts[i][j]})</small></td>')
        rows.append(f"<tr><th>{html.escape(c['name'])}</th>{''.join(cells)}<td>{sum(props[i]):.4f}</td></tr>")
    totals = "".join(f"<td>{sum(props[i][j] for i in range(len(classes))):.4f}</td>" for j in range(len(classes)))
    return (f"<table><tr><th>map \\ reference</th>{head}<th>total</th></tr>{''.join(rows)}"
            f"<tr><th>total</th>{totals}<td>1</td></tr></table>")


def _ci(figures: dict, key: str) -> float | None:
    """A figure's 95% half width: given, or 1.96 × its standard error (area proportions)."""
    if f"{key}_ci" in figures:
        return figures[f"{key}_ci"]
    se = figures.get(f"{key}_se")
    return None if se is None else Z_95 * se


def changes(earlier: dict, now: dict) -> list[tuple[str, dict, dict]]:
    """What changed since an earlier assessment, figure by figure.

    (what, earlier, now) for overall accuracy and each class's accuracies and area proportion, as {"value", "ci"}
    dicts; classes matched by value.
    """
    rows = [("overall accuracy", {"value": earlier["overall_accuracy"], "ci": earlier.get("overall_accuracy_ci")},
             {"value": now["overall_accuracy"], "ci": now.get("overall_accuracy_ci")})]
    before = {c["value"]: c for c in earlier["classes"]}
    for c in now["classes"]:
        old = before.get(c["value"])
        if old is None:
            continue
        for key, label in (("users_accuracy", "user's accuracy"), ("producers_accuracy", "producer's accuracy"),
                           ("area_proportion", "area proportion")):
            rows.append((f"{c['name']}: {label}", {"value": old.get(key), "ci": _ci(old, key)},
                         {"value": c.get(key), "ci": _ci(c, key)}))
    return rows


def _delta(a: dict, b: dict) -> str:
    if a["value"] is None or b["value"] is None:
        return "–"
    return f"{b['value'] - a['value']:+.3f}"


def change_lines(earlier: dict | None, now: dict) -> list[str]:
    """Log lines: how each figure changed since an earlier assessment (none without one)."""
    if earlier is None:
        return []
    return [f"Since the previous assessment, {what}: {_fmt(a['value'])} → {_fmt(b['value'])} ({_delta(a, b)})"
            for what, a, b in changes(earlier, now)]


def _change_table(earlier: dict | None, now: dict) -> str:
    if earlier is None:
        return ""
    rows = "".join(f"<tr><th>{html.escape(what)}</th><td>{_pm(a['value'], a['ci'])}</td><td>{_pm(b['value'], b['ci'])}"
                   f"</td><td>{_delta(a, b)}</td></tr>" for what, a, b in changes(earlier, now))
    return ("<h2>Since the previous assessment</h2><p>Each estimate with its own 95% interval. Two assessments from "
            "the same reference points are not independent samples: read the change as a guide, not a test.</p>"
            f"<table><tr><th></th><th>before</th><th>now</th><th>change</th></tr>{rows}</table>")


def html_report(result, names: tuple[str, str], earlier: dict | None = None) -> str:
    """The report of an `AccuracyReport`.

    `names` are the map's and the samples' names; `earlier` an earlier assessment's figures, to show what changed.
    """
    data = result.to_dict()
    changed = _change_table(earlier, data)
    hectares = math.isfinite(result.total_m2)
    total_pixels = sum(c["map_pixels"] for c in data["classes"]) or 1
    for c in data["classes"]:
        c["map_share"] = c["map_pixels"] / total_pixels
        c["area_proportion_ci"] = _ci(c, "area_proportion")
    e = html.escape
    rows = []
    for c in data["classes"]:
        mapped = f"{c['map_area_m2'] / 1e4:,.1f}" if hectares and c["map_area_m2"] is not None else "–"
        area = (f"{c['area_m2'] / 1e4:,.1f} ± {c['area_m2_ci'] / 1e4:,.1f}" if hectares and c["area_m2"] is not None
                else "–")
        rows.append(
            f"<tr><th>{e(c['name'])} ({c['value']})</th><td>{c['map_pixels']:,}</td><td>{c['map_share']:.2%}</td>"
            f"<td>{mapped}</td><td>{_pm(c['area_proportion'], c['area_proportion_ci'], 4)}</td><td>{area}</td>"
            f"<td>{_pm(c['users_accuracy'], c['users_accuracy_ci'])}</td>"
            f"<td>{_pm(c['producers_accuracy'], c['producers_accuracy_ci'])}</td>"
            f"<td>{c['sample_count']}</td><td>{c['reference_count']}</td></tr>")
    excluded = "; ".join(f"{n} {k.replace('_', ' ')}" for k, n in data["points_excluded"].items() if n) or "none"
    strata = ", ".join(f"{s['value']}: {s['sample_count']} of {s['pixels']:,} px" for s in data["strata"])
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Patchwork: accuracy and area</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:70em}} table{{border-collapse:collapse;margin:0.5em 0}}
td,th{{border:1px solid #bbb;padding:4px 8px;text-align:right}} th{{background:#f3f3f3}}
td.diag{{outline:2px solid #238b45;outline-offset:-2px}} small{{opacity:0.8}}</style>
</head><body>
<h1>Accuracy and area</h1>
<p><b>Map</b>: {e(names[0])}<br><b>Reference sample</b>: {e(names[1])}</p>
<p><b>Overall accuracy: {_pm(data['overall_accuracy'], data['overall_accuracy_ci'])}</b> (95% confidence interval),
from {data['points_used']} labelled points. Points left out: {e(excluded)}.</p>
<h2>Accuracy and area by class</h2>
<table><tr><th>class</th><th>mapped pixels</th><th>mapped share</th><th>mapped area (ha)</th>
<th>estimated area proportion ± 95% CI</th><th>estimated area (ha) ± 95% CI</th><th>user's accuracy ± 95% CI</th>
<th>producer's accuracy ± 95% CI</th><th>points mapped as the class</th><th>points of the class in the reference</th>
</tr>{''.join(rows)}</table>
<h2>Mapped and estimated area</h2>
{_area_chart(data['classes'], hectares)}
<h2>Error matrix</h2>
<p>Estimated proportions of area (sample counts in brackets); rows are map classes, columns reference classes.</p>
{_heat_map(data)}
{changed}
<h2>Method</h2>
<p>The reference data are {DESIGN_WORDS.get(data['design'], data['design'])} (points per stratum: {e(strata)}).
Accuracy and area were estimated with the stratified estimators of Stehman (2014), which reduce to those of Olofsson
et al. (2014) when the strata are the map classes and to those of simple random sampling with one stratum. Each
stratum is weighted by its area{' on the ellipsoid (the map is in geographic coordinates)' if result.geographic
else ''}. User's and producer's accuracies are ratio estimators; area is the estimated proportion of each reference
class times the mapped area. Confidence intervals are ± 1.96 standard errors (95%); no finite population correction
is applied. The areas in the table are error-adjusted estimates: they, not the mapped areas, are the figures to
report.</p>
<ol>{''.join(f'<li>{r}</li>' for r in REFERENCES)}</ol>
<p><small>Patchwork</small></p>
</body></html>
"""

