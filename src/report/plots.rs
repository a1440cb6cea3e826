//! PNG plots: the curves of a run's metrics, and a confusion matrix.

use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::data::InputShape;
use crate::run_files::Curve;
use crate::run_files::Record;

pub const CONFUSION: &str = "confusion.png";
pub const EARLY_DECISION: &str = "early-decision.png";

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

/// Draws curves against `x_label` (epochs, fractional for step records; or time steps).
fn draw_curves(
    path: &Path,
    title: &str,
    x_label: &str,
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
        .x_desc(x_label)
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

/// Colours of the metrics drawn in one picture, in order: (logging steps, epochs, validation).
const PALETTE: [(RGBColor, RGBColor, RGBColor); 3] = [
    (RGBColor(150, 180, 220), BLUE, RED),
    (
        RGBColor(160, 210, 160),
        RGBColor(0, 130, 0),
        RGBColor(230, 130, 0),
    ),
    (
        RGBColor(200, 170, 220),
        RGBColor(120, 40, 160),
        RGBColor(120, 80, 40),
    ),
];

/// One PNG per curve the task declares, from a run's metric records: each metric on the
/// training logging steps, the training epochs and validation.
pub fn curves_from_metrics(
    run: &Path,
    records: &[Record],
    steps_per_epoch: usize,
    curves: &[Curve],
) -> Result<()> {
    let spe = steps_per_epoch.max(1) as f64;
    let pick = |split: &str, scope: &str, metric: &str| -> Vec<(f64, f64)> {
        records
            .iter()
            .filter(|r| r.split == split && r.scope == scope)
            .filter_map(|r| {
                let x = if scope == "epoch" {
                    r.epoch as f64
                } else {
                    r.step as f64 / spe
                };
                r.get(metric).map(|y| (x, y))
            })
            .collect()
    };
    for curve in curves {
        let labels: Vec<[String; 3]> = curve
            .metrics
            .iter()
            .map(|m| {
                let prefix = if curve.metrics.len() > 1 {
                    format!("{m} ")
                } else {
                    String::new()
                };
                [
                    format!("{prefix}train (logging steps)"),
                    format!("{prefix}train (epoch)"),
                    format!("{prefix}validation"),
                ]
            })
            .collect();
        let mut series: Vec<Series> = Vec::new();
        for (i, m) in curve.metrics.iter().enumerate() {
            let (light, dark, val) = PALETTE[i % PALETTE.len()];
            series.push((&labels[i][0], light, pick("train", "step", m)));
            series.push((&labels[i][1], dark, pick("train", "epoch", m)));
            series.push((&labels[i][2], val, pick("val", "epoch", m)));
        }
        // The legend goes where the curves are not: low when they rise, high when they fall.
        let epochs = &series[1].2;
        let rising = epochs.len() > 1 && epochs[epochs.len() - 1].1 > epochs[0].1;
        let legend = if rising {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        };
        draw_curves(
            &run.join(curve.file),
            curve.title,
            "epoch",
            curve.y_label,
            &series,
            legend,
        )?;
    }
    Ok(())
}

/// `early-decision.png`: a spiking model's test accuracy from the readout after each time step,
/// and the share of images whose prediction is already final at that step.
pub fn early_decision(
    path: &Path,
    accuracy: &[f64],
    final_fraction: &[f64],
    count: usize,
) -> Result<()> {
    let at = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter()
            .enumerate()
            .map(|(t, &y)| ((t + 1) as f64, y))
            .collect()
    };
    draw_curves(
        path,
        &format!("Deciding early — test accuracy after each time step ({count} images)"),
        "time step",
        "fraction of test images",
        &[
            ("accuracy of the readout so far", BLUE, at(accuracy)),
            (
                "prediction already final",
                RGBColor(0, 130, 0),
                at(final_fraction),
            ),
        ],
        SeriesLabelPosition::LowerRight,
    )
}

/// Where the confusion matrix's cells go: `cell` pixels square, after a margin for the labels.
struct Grid {
    n: usize,
    cell: u32,
    left: u32,
    top: u32,
}

impl Grid {
    fn new(n: usize) -> Self {
        let cell = if n <= 12 { 56 } else { (700 / n.max(1)) as u32 }.max(8);
        Grid {
            n,
            cell,
            left: 170,
            top: 70,
        }
    }

    fn size(&self) -> (u32, u32) {
        let side = self.cell * self.n as u32;
        (self.left + side + 20, self.top + side + 50)
    }

    /// Top-left corner of cell (row `i`, column `j`).
    fn at(&self, i: usize, j: usize) -> (i32, i32) {
        (
            (self.left + self.cell * j as u32) as i32,
            (self.top + self.cell * i as u32) as i32,
        )
    }
}

fn font(size: u32) -> FontDesc<'static> {
    ("sans-serif", size).into_font()
}

/// `confusion.png`: rows are true classes, columns predictions; cells shaded by row share.
pub fn confusion(
    path: &Path,
    matrix: &[Vec<usize>],
    classes: &[String],
    title: &str,
) -> Result<()> {
    fonts();
    let grid = Grid::new(classes.len());
    let root = BitMapBackend::new(path, grid.size()).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    root.draw(&Text::new(title.to_string(), (10, 10), font(22)))
        .map_err(err(path))?;
    let (left, top) = (grid.left as i32, grid.top as i32);
    root.draw(&Text::new("predicted →", (left, top - 24), font(15)))
        .map_err(err(path))?;
    let half = grid.cell as i32 / 2;
    for (i, row) in matrix.iter().enumerate() {
        let total: usize = row.iter().sum::<usize>().max(1);
        let (_, y) = grid.at(i, 0);
        root.draw(&Text::new(classes[i].clone(), (8, y + half - 7), font(14)))
            .map_err(err(path))?;
        for (j, &v) in row.iter().enumerate() {
            draw_cell(&root, &grid, i, j, v, v as f64 / total as f64).map_err(err(path))?;
        }
    }
    // Column labels: rotated text is not available with ab_glyph, so they are stacked below.
    let y = top + grid.cell as i32 * grid.n as i32 + 8;
    for (j, name) in classes.iter().enumerate() {
        let (x, _) = grid.at(0, j);
        let short: String = name.chars().take((grid.cell as usize / 8).max(2)).collect();
        root.draw(&Text::new(
            short,
            (x + 2, y + if j % 2 == 0 { 0 } else { 18 }),
            font(12),
        ))
        .map_err(err(path))?;
    }
    root.present().map_err(err(path))?;
    Ok(())
}

/// One cell: blue on the diagonal, red off it, darker for a larger share of the row; the count
/// written in it when the matrix is small enough to read.
fn draw_cell<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    grid: &Grid,
    i: usize,
    j: usize,
    count: usize,
    share: f64,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (x, y) = grid.at(i, j);
    let c = grid.cell as i32;
    let shade = (255.0 * (1.0 - share)) as u8;
    let color = if i == j {
        RGBColor(shade, shade, 255)
    } else {
        RGBColor(255, shade, shade)
    };
    root.draw(&Rectangle::new([(x, y), (x + c, y + c)], color.filled()))?;
    root.draw(&Rectangle::new(
        [(x, y), (x + c, y + c)],
        RGBColor(220, 220, 220),
    ))?;
    if grid.n <= 12 {
        let tc = if share > 0.6 { WHITE } else { BLACK };
        let label = count.to_string();
        let at = (x + c / 2 - 4 * label.len() as i32, y + c / 2 - 7);
        root.draw(&Text::new(label, at, font(13).color(&tc)))?;
    }
    Ok(())
}

/// A grid of images: one row per label, its name on the left, images as `[c, h, w]` bytes
/// (1 or 3 channels) drawn `scale` pixels per image pixel. The folder is created if needed.
pub fn image_grid(
    path: &Path,
    title: &str,
    rows: &[(String, Vec<Vec<u8>>)],
    shape: InputShape,
    scale: u32,
) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    fonts();
    let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(0) as u32;
    let (h, w) = (shape.height as u32 * scale, shape.width as u32 * scale);
    let (left, top, gap) = (150u32, 44u32, 4u32);
    let size = (
        (left + cols * (w + gap) + 10).max(420),
        top + rows.len() as u32 * (h + gap) + 10,
    );
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    root.draw(&Text::new(title.to_string(), (10, 10), font(20)))
        .map_err(err(path))?;
    let plane = shape.height * shape.width;
    for (r, (label, images)) in rows.iter().enumerate() {
        let y0 = top + r as u32 * (h + gap);
        root.draw(&Text::new(
            label.clone(),
            (8, (y0 + h / 2) as i32 - 8),
            font(15),
        ))
        .map_err(err(path))?;
        for (c, img) in images.iter().enumerate() {
            let x0 = left + c as u32 * (w + gap);
            for py in 0..shape.height {
                for px in 0..shape.width {
                    let at = |ch: usize| img[ch * plane + py * shape.width + px];
                    let color = if shape.channels >= 3 {
                        RGBColor(at(0), at(1), at(2))
                    } else {
                        RGBColor(at(0), at(0), at(0))
                    };
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let p = (
                                (x0 + px as u32 * scale + dx) as i32,
                                (y0 + py as u32 * scale + dy) as i32,
                            );
                            root.draw_pixel(p, &color).map_err(err(path))?;
                        }
                    }
                }
            }
        }
    }
    root.present().map_err(err(path))?;
    Ok(())
}

/// One model's bar in the comparison chart.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    /// Absent for a model that failed.
    pub accuracy: Option<f64>,
    pub time_s: Option<f64>,
}

/// `comparison.png`, like the survey's Figure 2: test accuracy per model (top panel, the value
/// written on each bar) and training time (bottom panel, log scale). A failed model keeps its
/// place, marked "failed".
pub fn comparison_bars(path: &Path, title: &str, bars: &[Bar]) -> Result<()> {
    fonts();
    let n = bars.len().max(1);
    let width = (160 + 130 * n as u32).max(700);
    let root = BitMapBackend::new(path, (width, 820)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let (top, bottom) = root.split_vertically(500);
    let accs: Vec<f64> = bars.iter().filter_map(|b| b.accuracy).collect();
    let low = accs.iter().copied().fold(1.0f64, f64::min);
    let y0 = ((low - 0.05) * 20.0).floor().max(0.0) / 20.0;
    let mut chart = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(10)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..n as f64, y0..1.0f64)
        .map_err(err(path))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("test accuracy")
        .draw()
        .map_err(err(path))?;
    let blue = RGBColor(70, 110, 190);
    for (i, b) in bars.iter().enumerate() {
        let x = i as f64;
        match b.accuracy {
            Some(a) => {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x + 0.15, y0), (x + 0.85, a)],
                        blue.filled(),
                    )))
                    .map_err(err(path))?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{a:.4}"),
                        (x + 0.18, a + (1.0 - y0) * 0.05),
                        font(14),
                    )))
                    .map_err(err(path))?;
            }
            None => {
                chart
                    .draw_series(std::iter::once(Text::new(
                        "failed".to_string(),
                        (x + 0.25, y0 + (1.0 - y0) * 0.1),
                        font(14).color(&RED),
                    )))
                    .map_err(err(path))?;
            }
        }
        // The model's name above its value (or above "failed").
        let top_of = b.accuracy.unwrap_or(y0 + (1.0 - y0) * 0.05);
        chart
            .draw_series(std::iter::once(Text::new(
                b.label.clone(),
                (x + 0.18, top_of + (1.0 - y0) * 0.095),
                font(14),
            )))
            .map_err(err(path))?;
    }
    let times: Vec<f64> = bars.iter().filter_map(|b| b.time_s).collect();
    let t_max = times.iter().copied().fold(1.0f64, f64::max) * 3.0;
    let t_min = times.iter().copied().fold(t_max, f64::min).max(0.01) / 3.0;
    let mut chart = ChartBuilder::on(&bottom)
        .margin(16)
        .x_label_area_size(30)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..n as f64, (t_min..t_max).log_scale())
        .map_err(err(path))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("training time (s, log scale)")
        .draw()
        .map_err(err(path))?;
    let orange = RGBColor(220, 130, 40);
    for (i, b) in bars.iter().enumerate() {
        let x = i as f64;
        if let Some(t) = b.time_s {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x + 0.15, t_min), (x + 0.85, t)],
                    orange.filled(),
                )))
                .map_err(err(path))?;
            chart
                .draw_series(std::iter::once(Text::new(
                    if t < 10.0 {
                        format!("{t:.1} s")
                    } else {
                        format!("{t:.0} s")
                    },
                    (x + 0.25, t * 1.35),
                    font(13),
                )))
                .map_err(err(path))?;
        }
        chart
            .draw_series(std::iter::once(Text::new(
                b.label.clone(),
                (x + 0.18, t_min * 1.25),
                font(13).color(&WHITE),
            )))
            .map_err(err(path))?;
    }
    root.present().map_err(err(path))?;
    Ok(())
}

/// `per-class.png`: one row per model, one column per class, each cell its test accuracy
/// (white 0.5 or below → dark blue 1.0), the value written in it.
pub fn per_class_heat_map(
    path: &Path,
    title: &str,
    models: &[String],
    classes: &[String],
    values: &[Vec<f64>],
) -> Result<()> {
    fonts();
    let (cell_w, cell_h, left, top) = (86i32, 34i32, 170i32, 90i32);
    let size = (
        (left + cell_w * classes.len() as i32 + 20) as u32,
        (top + cell_h * models.len().max(1) as i32 + 20) as u32,
    );
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    root.draw(&Text::new(title.to_string(), (10, 10), font(20)))
        .map_err(err(path))?;
    for (j, class) in classes.iter().enumerate() {
        let short: String = class.chars().take(11).collect();
        let x = left + cell_w * j as i32 + 3;
        root.draw(&Text::new(
            short,
            (x, top - if j % 2 == 0 { 40 } else { 22 }),
            font(13),
        ))
        .map_err(err(path))?;
    }
    for (i, (model, row)) in models.iter().zip(values).enumerate() {
        let y = top + cell_h * i as i32;
        root.draw(&Text::new(model.clone(), (8, y + cell_h / 2 - 8), font(14)))
            .map_err(err(path))?;
        for (j, &v) in row.iter().enumerate() {
            let x = left + cell_w * j as i32;
            let share = ((v - 0.5) / 0.5).clamp(0.0, 1.0);
            let shade = (255.0 * (1.0 - share)) as u8;
            let color = RGBColor(shade, shade, 255);
            root.draw(&Rectangle::new(
                [(x, y), (x + cell_w, y + cell_h)],
                color.filled(),
            ))
            .map_err(err(path))?;
            root.draw(&Rectangle::new(
                [(x, y), (x + cell_w, y + cell_h)],
                RGBColor(220, 220, 220),
            ))
            .map_err(err(path))?;
            let tc = if share > 0.6 { WHITE } else { BLACK };
            root.draw(&Text::new(
                format!("{v:.3}"),
                (x + cell_w / 2 - 16, y + cell_h / 2 - 8),
                font(14).color(&tc),
            ))
            .map_err(err(path))?;
        }
    }
    root.present().map_err(err(path))?;
    Ok(())
}

/// `learning-curves.png`: test accuracy against the number of training images (log scale), one
/// line per model; `x_desc` names the images counted ("training images", "labelled training
/// images").
pub fn learning_curves(
    path: &Path,
    title: &str,
    x_desc: &str,
    curves: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    fonts();
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let pts: Vec<(f64, f64)> = curves.iter().flat_map(|c| c.1.iter().copied()).collect();
    let x0 = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x1 = pts.iter().map(|p| p.0).fold(0.0f64, f64::max);
    let (x0, x1) = if x0.is_finite() && x1 > x0 {
        (x0 / 1.3, x1 * 1.3)
    } else {
        (1.0, 10.0)
    };
    let y0 = pts.iter().map(|p| p.1).fold(1.0f64, f64::min);
    let y0 = ((y0 - 0.03) * 20.0).floor().max(0.0) / 20.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d((x0..x1).log_scale(), y0..1.0f64)
        .map_err(err(path))?;
    chart
        .configure_mesh()
        .x_labels(12)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc(format!("{x_desc} (log scale)"))
        .y_desc("test accuracy")
        .draw()
        .map_err(err(path))?;
    let colors = [
        RGBColor(40, 90, 200),
        RGBColor(220, 60, 40),
        RGBColor(0, 140, 60),
        RGBColor(150, 60, 170),
        RGBColor(230, 140, 0),
        RGBColor(0, 150, 160),
        RGBColor(120, 80, 40),
        RGBColor(90, 90, 90),
    ];
    for (k, (label, points)) in curves.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let color = colors[k % colors.len()];
        let style = ShapeStyle::from(color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))
            .map_err(err(path))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(err(path))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err(path))?;
    root.present().map_err(err(path))?;
    Ok(())
}
