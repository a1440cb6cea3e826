//! PNG plots: loss and accuracy curves, confusion matrix.

use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::train::metrics::Record;

pub const LOSS: &str = "loss.png";
pub const ACCURACY: &str = "accuracy.png";
pub const CONFUSION: &str = "confusion.png";

/// plotters draws text with fonts registered at run time; fovea embeds DejaVu Sans.
fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| ())
            .expect("embedded DejaVu Sans is a valid font");
    });
}

fn err<E: std::fmt::Debug>(path: &Path) -> impl FnOnce(E) -> anyhow::Error + '_ {
    move |e| anyhow!("cannot draw {}: {e:?}", path.display())
}

/// One curve: (label, colour, points).
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// Draws curves against epochs (fractional for step records).
fn curves(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[Series],
    legend: SeriesLabelPosition,
) -> Result<()> {
    fonts();
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let pts = series.iter().flat_map(|s| s.2.iter());
    let (mut x1, mut y0, mut y1) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    let pad = 0.05 * (y1 - y0).max(1e-3);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..x1, y0..y1)
        .map_err(err(path))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_label)
        .draw()
        .map_err(err(path))?;
    for (label, color, points) in series {
        if points.is_empty() {
            continue;
        }
        let style = ShapeStyle::from(*color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))
            .map_err(err(path))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        if points.len() < 60 {
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(err(path))?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(legend)
        .draw()
        .map_err(err(path))?;
    root.present().map_err(err(path))?;
    Ok(())
}

/// `loss.png` and `accuracy.png` from a run's metrics.
pub fn curves_from_metrics(run: &Path, records: &[Record], steps_per_epoch: usize) -> Result<()> {
    let spe = steps_per_epoch.max(1) as f64;
    let pick = |split: &str, scope: &str, f: fn(&Record) -> f64| -> Vec<(f64, f64)> {
        records
            .iter()
            .filter(|r| r.split == split && r.scope == scope)
            .map(|r| {
                (
                    if scope == "epoch" {
                        r.epoch as f64
                    } else {
                        r.step as f64 / spe
                    },
                    f(r),
                )
            })
            .collect()
    };
    let light = RGBColor(150, 180, 220);
    curves(
        &run.join(LOSS),
        "Loss (softmax cross-entropy)",
        "loss",
        &[
            (
                "train (logging steps)",
                light,
                pick("train", "step", |r| r.loss),
            ),
            ("train (epoch)", BLUE, pick("train", "epoch", |r| r.loss)),
            ("validation", RED, pick("val", "epoch", |r| r.loss)),
        ],
        SeriesLabelPosition::UpperRight,
    )?;
    curves(
        &run.join(ACCURACY),
        "Accuracy",
        "accuracy",
        &[
            (
                "train (logging steps)",
                light,
                pick("train", "step", |r| r.accuracy),
            ),
            (
                "train (epoch)",
                BLUE,
                pick("train", "epoch", |r| r.accuracy),
            ),
            ("validation", RED, pick("val", "epoch", |r| r.accuracy)),
        ],
        SeriesLabelPosition::LowerRight,
    )
}

/// `confusion.png`: rows are true classes, columns predictions; cells shaded by row share.
pub fn confusion(
    path: &Path,
    matrix: &[Vec<usize>],
    classes: &[String],
    title: &str,
) -> Result<()> {
    fonts();
    let n = classes.len();
    let cell = if n <= 12 { 56 } else { (700 / n.max(1)) as u32 }.max(8);
    let (left, top) = (170u32, 70u32);
    let size = (left + cell * n as u32 + 20, top + cell * n as u32 + 50);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let font = |s: u32| ("sans-serif", s).into_font();
    root.draw(&Text::new(title.to_string(), (10, 10), font(22)))
        .map_err(err(path))?;
    root.draw(&Text::new(
        "predicted →",
        (left as i32, top as i32 - 24),
        font(15),
    ))
    .map_err(err(path))?;
    for (i, row) in matrix.iter().enumerate() {
        let total: usize = row.iter().sum::<usize>().max(1);
        let y = (top + cell * i as u32) as i32;
        root.draw(&Text::new(
            classes[i].clone(),
            (8, y + cell as i32 / 2 - 7),
            font(14),
        ))
        .map_err(err(path))?;
        for (j, &v) in row.iter().enumerate() {
            let x = (left + cell * j as u32) as i32;
            let share = v as f64 / total as f64;
            let shade = (255.0 * (1.0 - share)) as u8;
            let color = if i == j {
                RGBColor(shade, shade, 255)
            } else {
                RGBColor(255, shade, shade)
            };
            root.draw(&Rectangle::new(
                [(x, y), (x + cell as i32, y + cell as i32)],
                color.filled(),
            ))
            .map_err(err(path))?;
            root.draw(&Rectangle::new(
                [(x, y), (x + cell as i32, y + cell as i32)],
                RGBColor(220, 220, 220),
            ))
            .map_err(err(path))?;
            if n <= 12 {
                let tc = if share > 0.6 { WHITE } else { BLACK };
                let label = v.to_string();
                let style = font(13).color(&tc);
                root.draw(&Text::new(
                    label.clone(),
                    (
                        x + cell as i32 / 2 - 4 * label.len() as i32,
                        y + cell as i32 / 2 - 7,
                    ),
                    style,
                ))
                .map_err(err(path))?;
            }
        }
    }
    // column labels, rotated text is not available with ab_glyph: write them stacked below
    let y = (top + cell * n as u32 + 8) as i32;
    for (j, name) in classes.iter().enumerate() {
        let x = (left + cell * j as u32) as i32 + 2;
        let short: String = name.chars().take((cell as usize / 8).max(2)).collect();
        root.draw(&Text::new(
            short,
            (x, y + if j % 2 == 0 { 0 } else { 18 }),
            font(12),
        ))
        .map_err(err(path))?;
    }
    root.present().map_err(err(path))?;
    Ok(())
}
