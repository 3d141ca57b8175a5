//! The leaderboard as text (the command's output), as Markdown, and as a
//! self-contained HTML page: inline CSS and SVG charts, images copied
//! beside it, nothing loaded from elsewhere, so it works offline.

use std::fmt::Write as _;

use siuo_core::html::escape;
use std::path::Path;

use super::results::{EvalReport, TargetScores};
use siuo_chain::panel::protocol::{Judgement, Verdict};
use siuo_chain::panel::score::{CaseVote, Scores};
use siuo_core::error::{Error, Result};
use siuo_core::release::{self, Release, ReleasedCase};

/// One case in the drill-down.
pub struct CaseDetail {
    pub question_id: u64,
    pub targets: Vec<TargetDetail>,
}

pub struct TargetDetail {
    pub target: String,
    pub vote: CaseVote,
    pub samples: Vec<SampleDetail>,
}

pub struct SampleDetail {
    pub sample: u32,
    /// `None` when the target has not answered (a failed request).
    pub response: Option<String>,
    pub judges: Vec<JudgeDetail>,
}

pub struct JudgeDetail {
    pub judge: String,
    pub judgement: Judgement,
    pub verdict: Option<Verdict>,
    pub answer: String,
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_owned(), |r| format!("{:.1}", r * 100.0))
}

/// Cohen's kappa to three places, or "undefined".
fn kappa(k: Option<f64>) -> String {
    k.map_or_else(|| "undefined".to_owned(), |k| format!("{k:.3}"))
}

fn with_interval(rate: Option<f64>, interval: Option<[f64; 2]>) -> String {
    match (rate, interval) {
        (Some(_), Some([lo, hi])) => {
            format!("{} [{:.1}, {:.1}]", percent(rate), lo * 100.0, hi * 100.0)
        }
        _ => percent(rate),
    }
}

/// Targets by safe-and-effective rate, then safe rate, then name; a target
/// with nothing judged last.
pub fn ranked(report: &EvalReport) -> Vec<&TargetScores> {
    let mut targets: Vec<&TargetScores> = report.targets.iter().collect();
    let key = |rate: Option<f64>| rate.unwrap_or(-1.0);
    targets.sort_by(|a, b| {
        let (a_scores, b_scores) = (&a.scores.overall, &b.scores.overall);
        key(b_scores.safe_and_effective_rate)
            .total_cmp(&key(a_scores.safe_and_effective_rate))
            .then(key(b_scores.safe_rate).total_cmp(&key(a_scores.safe_rate)))
            .then(a.name.cmp(&b.name))
    });
    targets
}

fn row(scores: &Scores) -> [String; 6] {
    [
        with_interval(scores.safe_rate, scores.ci.safe_rate),
        with_interval(scores.effective_rate, scores.ci.effective_rate),
        with_interval(
            scores.safe_and_effective_rate,
            scores.ci.safe_and_effective_rate,
        ),
        scores.cases.to_string(),
        scores.unjudged.to_string(),
        scores.no_response.to_string(),
    ]
}

const HEADERS: [&str; 9] = [
    "#",
    "target",
    "model",
    "safe % [95% CI]",
    "effective % [95% CI]",
    "safe & effective % [95% CI]",
    "cases",
    "unjudged",
    "no response",
];

fn table_rows(report: &EvalReport) -> Vec<Vec<String>> {
    ranked(report)
        .iter()
        .enumerate()
        .map(|(rank, t)| {
            let mut cells = vec![(rank + 1).to_string(), t.name.clone(), t.model.clone()];
            cells.extend(row(&t.scores.overall));
            cells
        })
        .collect()
}

fn judges_line(report: &EvalReport) -> String {
    let judges: Vec<String> = report
        .judges
        .iter()
        .map(|j| format!("{} ({} at {})", j.name, j.model, j.base_url))
        .collect();
    let templates: Vec<String> = report
        .templates
        .iter()
        .map(|(name, t)| {
            format!(
                "{name} {} blake3:{}",
                t.template,
                &t.blake3[..t.blake3.len().min(12)]
            )
        })
        .collect();
    format!(
        "judges: {}\ntemplates: {}\n",
        judges.join(", "),
        templates.join(", ")
    )
}

/// The leaderboard as the command prints it.
pub fn render_text(report: &EvalReport) -> String {
    let rows = table_rows(report);
    let mut widths: Vec<usize> = HEADERS.iter().map(|h| h.chars().count()).collect();
    for cells in &rows {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let mut text = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ");
        text.truncate(text.trim_end().len());
        text.push('\n');
        text
    };
    let mut text = format!(
        "eval of {} with protocol {}\n{}",
        report.release,
        report.protocol,
        judges_line(report)
    );
    text.push_str(&line(HEADERS.iter().map(|h| (*h).to_owned()).collect()));
    for cells in rows {
        text.push_str(&line(cells));
    }
    text.push_str(&over_refusal(report));
    for pair in &report.judge_agreement {
        let _ = writeln!(
            text,
            "judges {} and {}: safety kappa {} over {} responses, effectiveness kappa {} over {}",
            pair.judges[0],
            pair.judges[1],
            kappa(pair.safety.kappa),
            pair.safety.n,
            kappa(pair.effectiveness.kappa),
            pair.effectiveness.n
        );
    }
    if let Some(gold) = &report.gold {
        for judge in &gold.judges {
            let _ = writeln!(
                text,
                "gold {}: judge {} accuracy {} ({} of {} judged, {} unjudged)",
                gold.file.display(),
                judge.judge,
                percent(judge.accuracy),
                judge.correct,
                judge.judged,
                judge.unjudged
            );
        }
    }
    if !report.complete {
        let _ = writeln!(
            text,
            "incomplete: {} requests failed; rerun to ask them again",
            report.failures.len()
        );
    }
    let _ = writeln!(text, "records: {}", report.records.display());
    if let Some(dir) = &report.report {
        let _ = writeln!(text, "report: {}", dir.join("index.html").display());
    }
    text
}

/// The leaderboard as a Markdown table.
pub fn render_markdown(report: &EvalReport) -> String {
    let mut text = format!(
        "# SIUO eval of {}\n\nProtocol `{}`. {}\n",
        report.release,
        report.protocol,
        judges_line(report).replace('\n', "  \n")
    );
    let _ = writeln!(text, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(text, "|{}", "---|".repeat(HEADERS.len()));
    for cells in table_rows(report) {
        let escaped: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(text, "| {} |", escaped.join(" | "));
    }
    let refusals = over_refusal(report);
    if !refusals.is_empty() {
        let _ = write!(text, "\n{}", refusals.replace('\n', "  \n"));
    }
    let _ = writeln!(
        text,
        "\nRates are over judged cases. Vote rule: {}.",
        report.vote_rule
    );
    text
}

/// One line per target on the release's benign controls; empty without them.
fn over_refusal(report: &EvalReport) -> String {
    let mut text = String::new();
    for target in ranked(report) {
        let Some(controls) = &target.controls else {
            continue;
        };
        let _ = writeln!(
            text,
            "over-refusal of {}: {}% of {} judged controls refused (of {} controls; {} unjudged, {} no response)",
            target.name,
            percent(controls.over_refusal),
            controls.judged,
            controls.controls,
            controls.unjudged,
            controls.no_response
        );
    }
    text
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1d2327}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.8rem 0}td,th{border:1px solid #ccd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f1f3f7}.muted{color:#667}.chart{margin:.5rem 0 1.5rem}
.legend span{display:inline-block;margin-right:1rem}.sw{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
details.case{border:1px solid #dde;border-radius:6px;margin:.5rem 0;padding:.4rem .8rem}
details.case summary{cursor:pointer}details.case img{max-width:22rem;max-height:22rem;float:right;margin:0 0 .5rem 1rem}
.response{white-space:pre-wrap;background:#f7f8fa;padding:.4rem;border-radius:4px}
.judge{white-space:pre-wrap;font-size:.9em;color:#334;margin:.1rem 0}.judge summary{cursor:pointer}
table.samples{width:100%}table.samples td:first-child{width:3.5rem}table.samples td:last-child{width:22rem}
.charts{display:flex;flex-wrap:wrap;gap:1.5rem}.charts h3{margin:.2rem 0;font-size:1rem}
.badge{display:inline-block;border-radius:3px;padding:0 .35rem;margin-left:.3rem;font-size:.85em}
.good{background:#d7f0dc}.bad{background:#f7d4d4}.none{background:#e6e6ea}";

const COLOURS: [(&str, &str); 3] = [
    ("safe", "#2f7d4a"),
    ("effective", "#3d6fb4"),
    ("safe & effective", "#8a5cb8"),
];

/// One target's per-domain bars: safe, effective, both, 0 to 100%.
fn domain_chart(target: &TargetScores, domain_names: &dyn Fn(&str) -> String) -> String {
    let domains: Vec<(&String, &Scores)> = target.scores.by_domain.iter().collect();
    let (left, bar, gap, height) = (40.0, 14.0, 18.0, 180.0);
    let group = bar * 3.0 + gap;
    let width = left + group * domains.len() as f64 + 10.0;
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{} per domain\" width=\"{width:.0}\" height=\"{:.0}\" viewBox=\"0 0 {width:.0} {:.0}\">",
        escape(&target.name),
        height + 70.0,
        height + 70.0
    );
    for tick in [0, 25, 50, 75, 100] {
        let y = 10.0 + height * (1.0 - f64::from(tick) / 100.0);
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{width:.0}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e5ea\"/><text x=\"{:.0}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{tick}</text>",
            left - 4.0,
            y + 3.0
        );
    }
    for (index, (domain, scores)) in domains.iter().enumerate() {
        let x0 = left + gap / 2.0 + group * index as f64;
        let rates = [
            scores.safe_rate,
            scores.effective_rate,
            scores.safe_and_effective_rate,
        ];
        for (k, rate) in rates.iter().enumerate() {
            let value = rate.unwrap_or(0.0);
            let h = height * value;
            let _ = write!(
                svg,
                "<rect class=\"bar\" data-domain=\"{}\" data-rate=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{bar}\" height=\"{h:.1}\" fill=\"{}\"><title>{} {}: {}%</title></rect>",
                escape(domain),
                COLOURS[k].0,
                x0 + bar * k as f64,
                10.0 + height - h,
                COLOURS[k].1,
                escape(&domain_names(domain)),
                COLOURS[k].0,
                percent(*rate)
            );
        }
        let label: String = domain_names(domain).chars().take(18).collect();
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" transform=\"rotate(-35 {:.1} {:.1})\">{}</text>",
            x0 + bar * 1.5,
            height + 24.0,
            x0 + bar * 1.5,
            height + 24.0,
            escape(&label)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn badge(label: &str, verdict: Option<bool>) -> String {
    let (class, mark) = match verdict {
        Some(true) => ("good", "yes"),
        Some(false) => ("bad", "no"),
        None => ("none", "—"),
    };
    format!("<span class=\"badge {class}\">{label}: {mark}</span>")
}

/// The self-contained page.
pub fn render_html(
    report: &EvalReport,
    cases: &[ReleasedCase],
    details: &[CaseDetail],
    domain_names: &dyn Fn(&str) -> String,
) -> String {
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>SIUO eval of {release}</title><style>{STYLE}</style></head><body><h1>SIUO eval of {release}</h1>",
        release = escape(&report.release)
    );
    let _ = write!(
        html,
        "<p class=\"muted\">Protocol <code>{}</code>. {}</p>",
        escape(&report.protocol),
        escape(&judges_line(report)).replace('\n', "<br>")
    );
    html.push_str(
        "<h2 id=\"leaderboard\">Leaderboard</h2><table class=\"leaderboard\"><thead><tr>",
    );
    for header in HEADERS {
        let _ = write!(html, "<th>{}</th>", escape(header));
    }
    html.push_str("</tr></thead><tbody>");
    for cells in table_rows(report) {
        html.push_str("<tr>");
        for cell in cells {
            let _ = write!(html, "<td>{}</td>", escape(&cell));
        }
        html.push_str("</tr>");
    }
    let _ = write!(
        html,
        "</tbody></table><p class=\"muted\">Rates are over judged cases; bootstrap 95% intervals over cases ({} resamples, seed {}). Vote rule: {}.</p>",
        report.bootstrap.resamples,
        report.bootstrap.seed,
        escape(&report.vote_rule)
    );
    let refusals = over_refusal(report);
    if !refusals.is_empty() {
        let _ = write!(
            html,
            "<h2 id=\"over-refusal\">Over-refusal on benign controls</h2><p>{}</p>",
            escape(&refusals).replace('\n', "<br>")
        );
    }
    if !report.complete {
        let _ = write!(
            html,
            "<p class=\"badge bad\">Incomplete: {} requests failed; rerun to ask them again.</p>",
            report.failures.len()
        );
    }
    if !report.judge_agreement.is_empty() {
        html.push_str("<h2>Judge agreement</h2><table><tr><th>judges</th><th>safety κ (n)</th><th>effectiveness κ (n)</th></tr>");
        for pair in &report.judge_agreement {
            let _ = write!(
                html,
                "<tr><td>{} / {}</td><td>{} ({})</td><td>{} ({})</td></tr>",
                escape(&pair.judges[0]),
                escape(&pair.judges[1]),
                kappa(pair.safety.kappa),
                pair.safety.n,
                kappa(pair.effectiveness.kappa),
                pair.effectiveness.n
            );
        }
        html.push_str("</table>");
    }
    html.push_str("<h2 id=\"domains\">Per domain</h2><p class=\"legend\">");
    for (name, colour) in COLOURS {
        let _ = write!(
            html,
            "<span><i class=\"sw\" style=\"background:{colour}\"></i>{name}</span>"
        );
    }
    html.push_str("</p>");
    html.push_str("<div class=\"charts\">");
    for target in ranked(report) {
        let _ = write!(
            html,
            "<figure><h3>{} <span class=\"muted\">{}</span></h3>{}</figure>",
            escape(&target.name),
            escape(&target.model),
            domain_chart(target, domain_names)
        );
    }
    html.push_str("</div>");
    let _ = write!(html, "<h2 id=\"cases\">Cases ({})</h2>", cases.len());
    for (case, detail) in cases.iter().zip(details) {
        let _ = write!(
            html,
            "<details class=\"case\" id=\"case-{}\"><summary><b>#{}</b> {} / {} — {}",
            case.question_id,
            case.question_id,
            escape(&domain_names(&case.domain)),
            escape(&case.subcategory),
            escape(&case.question)
        );
        for target in &detail.targets {
            let _ = write!(
                html,
                " <span class=\"muted\">{}</span>{}{}",
                escape(&target.target),
                badge("safe", target.vote.safe),
                badge("effective", target.vote.effective)
            );
        }
        let _ = write!(
            html,
            "</summary><img loading=\"lazy\" src=\"images/{}\" alt=\"image of case {}\"><p><b>Question:</b> {}</p><p><b>Safety warning:</b> {}</p><p><b>Reference answer:</b> {}</p>",
            escape(&case.image),
            case.question_id,
            escape(&case.question),
            escape(&case.safety_warning),
            escape(&case.reference_answer)
        );
        for target in &detail.targets {
            let _ = write!(
                html,
                "<h4 style=\"clear:both\">{} <span class=\"muted\">case vote</span>{}{}{}</h4><table class=\"samples\"><tr><th>sample</th><th>response</th><th>judges (open for their reasons)</th></tr>",
                escape(&target.target),
                badge("safe", target.vote.safe),
                badge("effective", target.vote.effective),
                badge("both", target.vote.safe_and_effective)
            );
            for sample in &target.samples {
                let text = match &sample.response {
                    None => "<i>not answered (the request failed)</i>".to_owned(),
                    Some(r) if r.trim().is_empty() => {
                        "<i>no response (empty answer)</i>".to_owned()
                    }
                    Some(r) => escape(r),
                };
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td><div class=\"response\">{text}</div></td><td>",
                    sample.sample
                );
                for judge in &sample.judges {
                    let verdict = judge.verdict.map_or("unjudged", Verdict::name);
                    let class = match judge.verdict.map(Verdict::favourable) {
                        Some(true) => "good",
                        Some(false) => "bad",
                        None => "none",
                    };
                    let _ = write!(
                        html,
                        "<details class=\"judge\"><summary><span class=\"badge {class}\">{} · {} · {}</span></summary>{}</details>",
                        escape(&judge.judge),
                        judge.judgement.name(),
                        verdict,
                        escape(&judge.answer)
                    );
                }
                html.push_str("</td></tr>");
            }
            html.push_str("</table>");
        }
        html.push_str("</details>");
    }
    html.push_str("</body></html>\n");
    html
}

/// Writes `index.html` (images beside it), `leaderboard.md` and
/// `results.json` into `dir`.
pub fn write(
    dir: &Path,
    report: &EvalReport,
    release: &Release,
    cases: &[ReleasedCase],
    details: &[CaseDetail],
    domain_names: &dyn Fn(&str) -> String,
) -> Result<()> {
    let images = dir.join(release::IMAGES);
    std::fs::create_dir_all(&images).map_err(|e| Error::io(&images, e))?;
    for case in cases {
        let from = release.dir.join(release::IMAGES).join(&case.image);
        let to = images.join(&case.image);
        std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
    }
    siuo_core::atomic_file::write(
        &dir.join("index.html"),
        render_html(report, cases, details, domain_names).as_bytes(),
    )?;
    siuo_core::atomic_file::write(
        &dir.join("leaderboard.md"),
        render_markdown(report).as_bytes(),
    )?;
    siuo_core::atomic_file::write_json(&dir.join(super::results::RESULTS), report)
}
