"""The short table ``make bench`` prints, and the ratios the targets are stated in."""

from __future__ import annotations

from typing import Any

from bench.steady import SETTLE_S

STEADY = (
    "routed/s: from the first request due to the last answered; steady: from "
    f"{SETTLE_S:.0f} s in, once the pipeline is full (its latency no longer counted against it)"
)
TARGETS = (
    "targets: intake >= 0.8 x durable accept; end to end sustains >= 1,000 issues/s (steady, "
    "offered 1,000/s or more); p99 <= 250 ms at 200/s; no RSS growth after warm-up"
)
# The end-to-end rate the target names, issues/s.
TARGET_RPS = 1000.0


def table(results: dict[str, Any]) -> str:
    """The rows that ran: a run with ``--pipeline-only`` has no baselines and no intake rows."""
    bare = results["bare_http"]
    lines = _accept_rows(bare, results["databases"]) if bare else []
    lines.append(
        f"{'end to end':<24}{'offered':>8}{'routed/s':>9}{'steady':>8}{'p50':>7}{'p95':>7}"
        f"{'p99 ms':>8}{'backlog':>8}{'drain s':>8}{'dup':>5}  cpu% / peak MB / growth MB"
    )
    lines += _pipeline_rows(results["databases"])
    lines += _over_intake_lines(results["databases"])
    lines += _sustained_lines(results["databases"])
    if regions := results.get("settings", {}).get("regions"):
        lines.append(f"(the pipeline's issues name {regions} regions: outage correlation ran)")
    lines += [
        "",
        "where the machine's CPU went, ms per request or routed issue -> the rate it caps:",
    ]
    if bare:
        lines.append(f"{'A':<19}{_machine(bare.get('machine'))}")
    for kind, figures in results["databases"].items():
        if "durable_accept" in figures:
            lines += [
                f"{'B  ' + kind:<19}{_machine(figures['durable_accept'].get('machine'))}",
                f"{'   intake':<19}{_machine(figures['intake'].get('machine'))}",
            ]
            if keyed := figures.get("intake_keyed"):
                lines.append(f"{'   … keyed':<19}{_machine(keyed.get('machine'))}")
        else:
            lines.append(kind)
        for run in figures["pipeline"]:
            lines.append(
                f"{'   e2e ' + format(run['offered_rps'], '.0f') + '/s':<19}"
                f"{_machine(run.get('machine'))}"
            )
            if batches := run.get("mean_batch"):
                lines.append(f"{'':<19}{mean_batch_line(batches)}")
        lines += catch_up_lines(figures.get("catch_up"))
    lines += ["", STEADY, TARGETS]
    if probe := results.get("speed_probe_s"):
        lines.append(
            f"machine speed: a 5-million-step Python loop took {probe['before']} s before the "
            f"rows and {probe.get('after', '-')} s after (lower is faster; compare runs by it)"
        )
    return "\n".join(lines)


def _accept_rows(bare: dict[str, Any], databases: dict[str, Any]) -> list[str]:
    lines = [
        f"{'row':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}",
        f"{'A  bare HTTP (no DB, no broker)':<34}{bare['rps']:>9}{bare['p50_ms']:>9}"
        f"{bare['p99_ms']:>9}",
    ]
    for kind, figures in databases.items():
        durable, intake = figures["durable_accept"], figures["intake"]
        lines += [
            f"{'B  durable accept, ' + kind:<34}{durable['rps']:>9}{durable['p50_ms']:>9}"
            f"{durable['p99_ms']:>9}",
            f"{'   intake POST /v1/issues, ' + kind:<34}{intake['rps']:>9}{intake['p50_ms']:>9}"
            f"{intake['p99_ms']:>9}",
            f"{'':<4}ours/A {_ratio(intake['rps'], bare['rps'])}   ours/B {_over_b(figures)}",
        ]
        if keyed := figures.get("intake_keyed"):
            lines += [
                f"{'   … with Idempotency-Key, ' + kind:<34}{keyed['rps']:>9}"
                f"{keyed['p50_ms']:>9}{keyed['p99_ms']:>9}",
                f"{'':<4}ours/B {_over_b(figures, 'intake_keyed', 'keyed_over_b')}",
            ]
    return [*lines, ""]


def _pipeline_rows(databases: dict[str, Any]) -> list[str]:
    lines = []
    for kind, figures in databases.items():
        for run in figures["pipeline"]:
            services = "  ".join(
                f"{n[:3]} {u['cpu_pct']}/{u['peak_rss_mb']:.0f}/{u['rss_growth_mb']:+.0f}"
                for n, u in run["services"].items()
            )
            lines.append(
                f"{kind:<24}{run['offered_rps']:>8.0f}{run['routed_rps']:>9}"
                f"{_rate(run.get('sustained_rps')):>8}"
                f"{_ms(run['e2e_p50_ms']):>7}{_ms(run['e2e_p95_ms']):>7}"
                f"{_ms(run['e2e_p99_ms']):>8}{run['backlog_at_end']:>8}"
                f"{_ms(run['drain_s']):>8}{run['duplicates']:>5}  {services}"
            )
    return lines


def _over_intake_lines(databases: dict[str, Any]) -> list[str]:
    """End to end against the intake (see ``bench.rows.over_intake``), a line per database."""
    lines = []
    for kind, figures in databases.items():
        runs = [run for run in figures["pipeline"] if "sustained_over_accepted" in run]
        if not runs:
            continue
        line = f"{'':<4}{kind}: steady / accepted a second " + ", ".join(
            f"{run['sustained_over_accepted']:.2f} at {run['offered_rps']:,.0f}/s" for run in runs
        )
        if intake := figures.get("intake"):
            line += f"; / the intake at saturation ({intake['rps']:,.0f} req/s) " + ", ".join(
                f"{run['sustained_over_intake']:.2f}" for run in runs
            )
        lines.append(line)
    return lines


def sustained(figures: dict[str, Any]) -> dict[str, float] | None:
    """The database's row with the highest steady rate among those offered at least
    :data:`TARGET_RPS`: what the pipeline sustains. Offered exactly the target, a pipeline that
    keeps up routes the target give or take the edges of the window; offered more, it routes
    what it can."""
    runs = [
        run
        for run in figures["pipeline"]
        if run["offered_rps"] >= TARGET_RPS and run.get("sustained_rps") is not None
    ]
    if not runs:
        return None
    best = max(runs, key=lambda run: run["sustained_rps"])
    return {"offered_rps": best["offered_rps"], "sustained_rps": best["sustained_rps"]}


def _sustained_lines(databases: dict[str, Any]) -> list[str]:
    lines = []
    for kind, figures in databases.items():
        if best := sustained(figures):
            lines.append(
                f"{'':<4}{kind}: sustained {best['sustained_rps']:,.1f} issues/s steady "
                f"(offered {best['offered_rps']:,.0f}/s)"
            )
    return lines


def catch_up_lines(figures: dict[str, Any] | None) -> list[str]:
    """Each consumer alone working off the backlog: its rate, and the machine's CPU per event."""
    if not figures:
        return []
    lines = []
    for name in ("classifier", "notifier"):
        run = figures[name]
        label = f"  {name} alone"
        lines.append(
            f"{label:<19}{_machine(run.get('machine'))}  "
            f"({run['events_per_s']}/s, backlog {figures['backlog']})"
        )
    return lines


def mean_batch_line(means: dict[str, float]) -> str:
    """The mean batches of a run, grouped by stage: "consume classifier 410.2 notifier 289.0;
    relay …"."""
    stages: dict[str, list[str]] = {}
    for key, mean in means.items():
        stage, _, name = key.partition(" ")
        stages.setdefault(stage, []).append(f"{name} {mean}")
    return "mean batch: " + "; ".join(f"{s} {' '.join(parts)}" for s, parts in stages.items())


def _machine(machine: dict[str, Any] | None) -> str:
    if not machine or "ms_per_item" not in machine:
        return "-"
    parts = ", ".join(f"{name} {ms}" for name, ms in machine["ms_per_item"].items())
    stolen = f" stolen {machine['stolen_pct']:>4}%" if "stolen_pct" in machine else ""
    return (
        f"busy {machine['busy_pct']:>5}%{stolen}  {machine['busy_ms_per_item']:>5} ms ({parts})"
        f" -> {machine['ceiling_per_s']}/s"
    )


def _over_b(figures: dict[str, Any], run: str = "intake", ratio: str = "intake_over_b") -> str:
    """The median of the turns' ratios of ``run`` to B, and each turn's."""
    turns = figures.get("rounds")
    if not turns or ratio not in figures:
        return _ratio(figures[run]["rps"], figures["durable_accept"]["rps"]) + " (B's median run)"
    each = ", ".join(f"{turn[ratio]:.2f}" for turn in turns)
    return f"{figures[ratio]:.2f} (median of {len(turns)} turns: {each})"


def _ratio(ours: float, baseline: float) -> str:
    return f"{ours / baseline:.2f}" if baseline else "-"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
