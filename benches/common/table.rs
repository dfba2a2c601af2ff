//! Samples, medians with ranges, number formatting and markdown tables: how every
//! bench reports its rounds.

/// Median (the mean of the middle two for an even count), min and max.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// Median, min and max of the finite values of `xs` (`None` when there are none).
pub fn stat(xs: &[f64]) -> Option<Stat> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Stat {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

/// The median of `xs` (see [`stat`]).
pub fn median(xs: &[f64]) -> Option<f64> {
    stat(xs).map(|s| s.median)
}

/// Formats a number for a table: three significant figures, thousands as `k`/`M`.
pub fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// Renders a markdown table: the first column left-aligned, the others right.
pub fn markdown<S: AsRef<str>>(header: &[S], rows: &[Vec<String>]) -> String {
    let header: Vec<&str> = header.iter().map(AsRef::as_ref).collect();
    let seps: Vec<&str> = (0..header.len())
        .map(|i| if i == 0 { "---" } else { "---:" })
        .collect();
    let mut out = format!("| {} |\n| {} |\n", header.join(" | "), seps.join(" | "));
    for r in rows {
        out.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    out
}

/// Checks of the pure parts, for the benches' self-tests: the failures' names.
pub fn self_check() -> Vec<&'static str> {
    let mut bad = Vec::new();
    let mut check = |name, ok: bool| {
        if !ok {
            bad.push(name);
        }
    };
    check("median odd", median(&[3.0, 1.0, 2.0]) == Some(2.0));
    check("median even", median(&[4.0, 1.0, 2.0, 3.0]) == Some(2.5));
    check("median empty", median(&[]).is_none());
    check("median NaN", median(&[f64::NAN, 1.0]) == Some(1.0));
    let s = stat(&[3.0, 1.0, 2.0]);
    check("range", s.is_some_and(|s| s.min == 1.0 && s.max == 3.0));
    check("num", num(12345.0) == "12k" && num(1.234) == "1.23");
    let t = markdown(&["a", "b"], &[vec!["x".into(), "1".into()]]);
    check("markdown", t == "| a | b |\n| --- | ---: |\n| x | 1 |\n");
    bad
}
