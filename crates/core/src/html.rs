//! What siuo's self-contained HTML pages share: escaping and SVG charts.

use std::fmt::Write as _;

/// Text safe inside HTML elements and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A horizontal bar chart: one labeled bar per row, scaled to the largest.
pub fn bar_chart(class: &str, label: &str, rows: &[(String, f64)], unit: &str) -> String {
    let (left, width, bar, gap) = (230.0, 360.0, 16.0, 6.0);
    let height = (bar + gap) * rows.len() as f64 + 10.0;
    let max = rows.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1e-9);
    let mut svg = format!(
        "<svg class=\"chart {class}\" role=\"img\" aria-label=\"{}\" width=\"{:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {:.0} {height:.0}\">",
        escape(label),
        left + width + 60.0,
        left + width + 60.0
    );
    for (index, (name, value)) in rows.iter().enumerate() {
        let y = 5.0 + (bar + gap) * index as f64;
        let w = width * value / max;
        let short: String = name.chars().take(36).collect();
        let _ = write!(
            svg,
            "<text x=\"{:.0}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text><rect class=\"bar\" data-label=\"{}\" data-value=\"{value}\" x=\"{left}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bar}\" fill=\"#3d6fb4\"><title>{}: {value}{unit}</title></rect><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{value}{unit}</text>",
            left - 6.0,
            y + bar - 4.0,
            escape(&short),
            escape(name),
            escape(name),
            left + w + 4.0,
            y + bar - 4.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A histogram of values in [0, 1] in `bins` equal bins (1.0 in the last).
pub fn histogram(class: &str, label: &str, values: &[f64], bins: usize) -> String {
    let mut counts = vec![0u64; bins];
    for value in values {
        let bin = ((value.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        counts[bin] += 1;
    }
    let (left, height, bar) = (30.0, 120.0, 26.0);
    let width = left + bar * bins as f64 + 10.0;
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let mut svg = format!(
        "<svg class=\"chart {class}\" role=\"img\" aria-label=\"{}\" width=\"{width:.0}\" height=\"{:.0}\" viewBox=\"0 0 {width:.0} {:.0}\">",
        escape(label),
        height + 36.0,
        height + 36.0
    );
    for (index, count) in counts.iter().enumerate() {
        let h = height * *count as f64 / max;
        let x = left + bar * index as f64;
        let from = index as f64 / bins as f64;
        let _ = write!(
            svg,
            "<rect class=\"bar\" data-count=\"{count}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#8a5cb8\"><title>{from:.1} to {:.1}: {count}</title></rect>",
            x + 1.0,
            10.0 + height - h,
            bar - 2.0,
            from + 1.0 / bins as f64
        );
    }
    for tick in [0.0, 0.5, 1.0] {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.0}\" font-size=\"10\" text-anchor=\"middle\">{tick:.1}</text>",
            left + bar * bins as f64 * tick,
            height + 26.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.0}\" y=\"18\" font-size=\"10\" text-anchor=\"end\">{max:.0}</text></svg>",
        left - 4.0
    );
    svg
}
