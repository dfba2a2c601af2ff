//! SVG plots with `plotters`.

use std::path::Path;

use plotters::prelude::*;

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// A bar: (name, median, min, max).
pub type Bar = (String, f64, f64, f64);

/// A panel: (title, y label, bars).
pub type Panel = (String, String, Vec<Bar>);

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// A bar per contender: median with a min–max whisker.
/// `bars`: (name, median, min, max).
pub fn bar_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    bars: &[(String, f64, f64, f64)],
) -> PlotResult {
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    draw_bars(&root, title, 22, y_label, bars)?;
    root.present()?;
    Ok(())
}

/// Several bar charts side by side under one title (each with its own scale).
/// `panels`: (title, y label, bars).
pub fn bar_panels(path: &Path, title: &str, panels: &[Panel]) -> PlotResult {
    let n = panels.len().max(1);
    let root = SVGBackend::new(path, (480 * n as u32, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let areas = root.split_evenly((1, n));
    for (area, (t, y, bars)) in areas.iter().zip(panels) {
        draw_bars(area, t, 18, y, bars)?;
    }
    root.present()?;
    Ok(())
}

fn draw_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    title_size: u32,
    y_label: &str,
    bars: &[(String, f64, f64, f64)],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let n = bars.len().max(1);
    let top = bars
        .iter()
        .map(|b| b.3.max(b.1))
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.1;
    let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", title_size))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        // `0..n - 1` segmented: n slots (`0..n` would draw an empty last one).
        .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n + 1)
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc(y_label)
        .y_label_formatter(&|y| super::table::num(*y))
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        let c = PALETTE[i % PALETTE.len()];
        let mut r = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), b.1),
            ],
            c.filled(),
        );
        r.set_margin(0, 0, 6, 6);
        r
    }))?;
    for (i, b) in bars.iter().enumerate() {
        chart.draw_series(LineSeries::new(
            vec![
                (SegmentValue::CenterOf(i), b.2),
                (SegmentValue::CenterOf(i), b.3),
            ],
            BLACK.stroke_width(2),
        ))?;
    }
    Ok(())
}

/// Lines of y against categorical x positions (`x_labels`), one per series; points
/// that are `None` are left out (e.g. select beyond FD_SETSIZE).
pub fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    x_labels: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> PlotResult {
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = x_labels.len().max(1);
    // Log scale: select and poll grow by orders of magnitude, epoll stays flat.
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().flatten().copied())
        .filter(|y| *y > 0.0)
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(0.0f64, f64::max);
    let (lo, hi) = if all.is_empty() {
        (1.0, 10.0)
    } else {
        (lo * 0.7, hi * 1.5)
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n).into_segmented(), (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => x_labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc(x_desc)
        .y_desc(y_desc)
        .y_label_formatter(&|y| super::table::num(*y))
        .draw()?;
    for (k, (name, ys)) in series.iter().enumerate() {
        let c = PALETTE[k % PALETTE.len()];
        let pts: Vec<(SegmentValue<usize>, f64)> = ys
            .iter()
            .enumerate()
            .filter_map(|(i, y)| y.map(|y| (SegmentValue::CenterOf(i), y)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
