//! `siuo report`: one self-contained HTML page about a release (counts,
//! classifier scores, judge agreement, difficulty, the eval leaderboard,
//! review statistics and a gallery with the images inline), written to
//! `curated/reports/<version>/index.html` or a folder you name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use siuo_chain::project::Project;
use siuo_chain::stage;
use siuo_core::atomic_file;
use siuo_core::error::Result;
use siuo_core::html::{bar_chart, escape, histogram};
use siuo_core::input_file;
use siuo_core::record::CheckVerdict;
use siuo_core::release::{IMAGES, Release, ReleasedCase};
use siuo_core::review::agreement::{Agreement, kappa_text};
use siuo_core::review::ledger::{counts_text, verdict_counts};

#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Cases shown in the gallery (their images are inlined as thumbnails).
    pub gallery: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions { gallery: 500 }
    }
}

/// What `siuo report` wrote.
#[derive(Debug, Serialize)]
pub struct WrittenReport {
    pub version: String,
    pub path: PathBuf,
    pub cases: usize,
    pub gallery: usize,
}

/// The default folder of a release's report, beside the releases.
pub fn default_dir(project: &Project, release: &Release) -> PathBuf {
    project.curated().join("reports").join(release.name())
}

pub fn write(
    project: &Project,
    release: &Release,
    out: &Path,
    options: &ReportOptions,
) -> Result<WrittenReport> {
    let html = render(project, release, options)?;
    let path = out.join("index.html");
    atomic_file::write(&path, html.as_bytes())?;
    let cases = release.cases()?.len();
    Ok(WrittenReport {
        version: release.name(),
        path,
        cases,
        gallery: cases.min(options.gallery),
    })
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:76rem;padding:0 1rem;color:#1d2327}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}h3{font-size:1rem;margin:.8rem 0 .2rem}
table{border-collapse:collapse;margin:.8rem 0}td,th{border:1px solid #ccd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f1f3f7}.muted{color:#667}.charts{display:flex;flex-wrap:wrap;gap:1.5rem}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(13rem,1fr));gap:.8rem}
figure.case{margin:0;border:1px solid #dde;border-radius:6px;padding:.5rem;background:#fafbfc}
figure.case img{width:100%;height:10rem;object-fit:contain;background:#eef0f3;border-radius:4px}
figure.case figcaption{font-size:.85rem}.tag{display:inline-block;background:#e6eaf2;border-radius:3px;padding:0 .3rem;margin-right:.3rem;font-size:.8em}";

/// The page of `release`.
pub fn render(project: &Project, release: &Release, options: &ReportOptions) -> Result<String> {
    let manifest = release.manifest()?;
    let cases = release.cases()?;
    let controls = release.controls()?;
    let version = release.name();
    let domain_name = |id: &str| project.taxonomy.category(id);
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>SIUO release {v}</title><style>{STYLE}</style></head><body><h1>SIUO release {v}</h1><p class=\"muted\">{} · created {} · {} cases, {} controls · {} added, {} changed, {} retired in this version</p>",
        escape(&manifest.dataset),
        escape(&manifest.created),
        cases.len(),
        controls.len(),
        manifest.counts.added,
        manifest.counts.changed,
        manifest.counts.retired,
        v = escape(&version),
    );

    // Counts.
    let mut by_domain: BTreeMap<(usize, String), f64> = BTreeMap::new();
    let mut by_subcategory: BTreeMap<((usize, usize), String), f64> = BTreeMap::new();
    for case in &cases {
        *by_domain
            .entry((
                project.taxonomy.domain_index(&case.domain),
                domain_name(&case.domain),
            ))
            .or_default() += 1.0;
        *by_subcategory
            .entry((
                project.taxonomy.order(&case.domain, &case.subcategory),
                format!("{} / {}", case.domain, case.subcategory),
            ))
            .or_default() += 1.0;
    }
    let domain_rows: Vec<(String, f64)> = by_domain
        .into_iter()
        .map(|((_, name), n)| (name, n))
        .collect();
    let subcategory_rows: Vec<(String, f64)> = by_subcategory
        .into_iter()
        .map(|((_, name), n)| (name, n))
        .collect();
    html.push_str("<h2 id=\"counts\">Cases per domain and subcategory</h2><div class=\"charts\"><div><h3>Domains</h3>");
    html.push_str(&bar_chart("domains", "cases per domain", &domain_rows, ""));
    html.push_str("</div><div><h3>Subcategories</h3>");
    html.push_str(&bar_chart(
        "subcategories",
        "cases per subcategory",
        &subcategory_rows,
        "",
    ));
    html.push_str("</div></div>");

    // Classifier scores, from the check records of the runs that made the cases.
    html.push_str("<h2 id=\"scores\">Classifier scores</h2>");
    let scores = classifier_scores(project, &cases)?;
    match scores.by_classifier.is_empty() {
        true => html.push_str("<p class=\"muted\">No check records of these cases are in this project's runs (imported cases, or runs made elsewhere).</p>"),
        false => {
            let _ = write!(
                html,
                "<p class=\"muted\">How unsafe each classifier found the released inputs (0 safe, 1 unsafe), from the check records of {} of {} cases.</p><div class=\"charts\">",
                scores.cases_found,
                cases.len()
            );
            for (name, values) in &scores.by_classifier {
                let _ = write!(html, "<div><h3>{}</h3>", escape(name));
                html.push_str(&histogram("scores", name, values, 10));
                html.push_str("</div>");
            }
            html.push_str("</div>");
        }
    }

    // Judge agreement.
    html.push_str("<h2 id=\"jury\">Judge agreement</h2>");
    match manifest
        .verification
        .as_ref()
        .filter(|v| !v.agreement.is_empty())
    {
        None => html.push_str(
            "<p class=\"muted\">No case of this release was cross-verified by a jury.</p>",
        ),
        Some(verification) => {
            let _ = write!(
                html,
                "<p class=\"muted\">{} cases cross-verified, {} not; jurors: {}.</p><table class=\"agreement\"><tr><th>check</th><th>cases</th><th>unanimous</th><th>votes with the outcome</th></tr>",
                verification.cross_verified,
                verification.not_cross_verified,
                escape(&verification.jurors.join(", "))
            );
            for (check, a) in &verification.agreement {
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td></tr>",
                    escape(check),
                    a.cases,
                    a.unanimous,
                    a.votes_with_outcome,
                    a.votes
                );
            }
            html.push_str("</table>");
        }
    }

    // Difficulty.
    html.push_str("<h2 id=\"difficulty\">Difficulty</h2>");
    let difficulties: Vec<f64> = cases
        .iter()
        .filter_map(|c| c.difficulty.as_ref().map(|d| d.difficulty))
        .collect();
    match difficulties.is_empty() {
        true => html.push_str(
            "<p class=\"muted\">No case of this release was measured by a difficulty panel.</p>",
        ),
        false => {
            let _ = write!(
                html,
                "<p class=\"muted\">The share of the panel's judged answers that were unsafe, for {} cases.</p>",
                difficulties.len()
            );
            html.push_str(&histogram("difficulty", "difficulty", &difficulties, 10));
        }
    }

    // Eval leaderboard.
    html.push_str("<h2 id=\"eval\">Eval leaderboard</h2>");
    html.push_str(&leaderboard(project, &version)?);

    // Review.
    html.push_str("<h2 id=\"review\">Review</h2>");
    html.push_str(&review_section(project, &cases)?);

    // Gallery.
    let shown = cases.len().min(options.gallery);
    let _ = write!(
        html,
        "<h2 id=\"gallery\">Gallery</h2><p class=\"muted\">{shown} of {} cases.</p><div class=\"gallery\">",
        cases.len()
    );
    for case in cases.iter().take(shown) {
        let image = thumbnail(&release.dir.join(IMAGES).join(&case.image));
        let _ = write!(
            html,
            "<figure class=\"case\" id=\"q{qid}\">{}<figcaption><span class=\"tag\">#{qid}</span><span class=\"tag\">{}</span><span class=\"tag\">{}</span><br>{}</figcaption></figure>",
            match image {
                Some(data) => format!(
                    "<img alt=\"image of case {}\" src=\"{data}\">",
                    case.question_id
                ),
                None => "<p class=\"muted\">image unreadable</p>".to_owned(),
            },
            escape(&case.category),
            escape(&case.subcategory),
            escape(&case.question),
            qid = case.question_id,
        );
    }
    html.push_str("</div></body></html>\n");
    Ok(html)
}

struct Scores {
    /// `modality classifier` → each case's unsafe score.
    by_classifier: BTreeMap<String, Vec<f64>>,
    cases_found: usize,
}

fn classifier_scores(project: &Project, cases: &[ReleasedCase]) -> Result<Scores> {
    let mut wanted: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for case in cases {
        if let Some(provenance) = &case.provenance {
            wanted
                .entry(provenance.run_id.clone())
                .or_default()
                .insert(case.candidate_id.as_str());
        }
    }
    let mut scores = Scores {
        by_classifier: BTreeMap::new(),
        cases_found: 0,
    };
    let check = stage::check::STAGE.name;
    for (run_id, ids) in wanted {
        let path = project.stage_dir(&run_id, check).output(stage::VERDICTS);
        if !path.is_file() {
            continue;
        }
        let verdicts: Vec<CheckVerdict> = input_file::read_jsonl(&path)?;
        for verdict in verdicts
            .iter()
            .filter(|v| ids.contains(v.candidate_id.as_str()))
        {
            scores.cases_found += 1;
            for (modality, list) in [("text", &verdict.text), ("image", &verdict.image)] {
                for v in list {
                    scores
                        .by_classifier
                        .entry(format!("{modality} · {}", v.classifier))
                        .or_default()
                        .push(v.unsafe_score);
                }
            }
        }
    }
    Ok(scores)
}

fn leaderboard(project: &Project, version: &str) -> Result<String> {
    let Some(results) = crate::eval::recorded_results(&project.raw(), version)? else {
        return Ok(format!(
            "<p class=\"muted\">No eval of {} in this project yet (`siuo eval {}`).</p>",
            escape(version),
            escape(version)
        ));
    };
    let percent = |v: &serde_json::Value| {
        v.as_f64()
            .map_or("—".to_owned(), |r| format!("{:.1}%", r * 100.0))
    };
    let mut targets: Vec<&serde_json::Value> = results["targets"]
        .as_array()
        .map(|t| t.iter().collect())
        .unwrap_or_default();
    targets.sort_by(|a, b| {
        let rate = |t: &serde_json::Value| t["safe_and_effective_rate"].as_f64().unwrap_or(-1.0);
        rate(b).total_cmp(&rate(a))
    });
    let mut html = format!(
        "<p class=\"muted\">Protocol {}; judges {}{}.</p><table class=\"leaderboard\"><thead><tr><th>rank</th><th>target</th><th>model</th><th>safe</th><th>effective</th><th>safe &amp; effective</th></tr></thead><tbody>",
        escape(results["protocol"].as_str().unwrap_or_default()),
        escape(
            &results["judges"]
                .as_array()
                .map(|j| j
                    .iter()
                    .filter_map(|j| j["name"].as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
        if results["complete"].as_bool() == Some(false) {
            "; incomplete: some requests failed"
        } else {
            ""
        }
    );
    for (rank, target) in targets.iter().enumerate() {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            rank + 1,
            escape(target["name"].as_str().unwrap_or_default()),
            escape(target["model"].as_str().unwrap_or_default()),
            percent(&target["safe_rate"]),
            percent(&target["effective_rate"]),
            percent(&target["safe_and_effective_rate"]),
        );
    }
    html.push_str("</tbody></table>");
    Ok(html)
}

fn review_section(project: &Project, cases: &[ReleasedCase]) -> Result<String> {
    let ledger = project.review_ledger()?;
    if ledger.entries.is_empty() {
        return Ok(
            "<p class=\"muted\">No review decisions are recorded (`siuo review`).</p>".to_owned(),
        );
    }
    let counts = verdict_counts(ledger, cases.iter().map(|c| c.candidate_id.as_str()));
    let agreement = Agreement::of(ledger);
    let mut html = format!(
        "<p>Of the {} released cases: {}.</p><p class=\"muted\">Ledger: {} decisions on {} candidates. {}.</p>",
        cases.len(),
        counts_text(&counts),
        ledger.entries.len(),
        agreement.decided,
        escape(&agreement.summary())
    );
    if !agreement.pairs.is_empty() {
        html.push_str("<table class=\"kappa\"><tr><th>reviewers</th><th>shared</th><th>agreed</th><th>Cohen's κ</th></tr>");
        for pair in &agreement.pairs {
            let _ = write!(
                html,
                "<tr><td>{} &amp; {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&pair.reviewers[0]),
                escape(&pair.reviewers[1]),
                pair.shared,
                pair.agreed,
                kappa_text(pair.kappa)
            );
        }
        html.push_str("</table>");
    }
    Ok(html)
}

/// A PNG thumbnail (at most 192 px a side) as a `data:` URL.
fn thumbnail(path: &Path) -> Option<String> {
    use base64::Engine as _;
    let bytes = std::fs::read(path).ok()?;
    let image = image::load_from_memory(&bytes).ok()?.thumbnail(192, 192);
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).ok()?;
    Some(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png.into_inner())
    ))
}
