//! Fitting the exact RBF-kernel SVM (`kind = "kernel-svm"`) with linfa-svm's SMO solver: one
//! binary C-SVM per class against the rest, on a stratified subset of the training images, the
//! classes shared among one solver thread per core. linfa builds each class's kernel matrix
//! itself (n² values, n · n · pixels operations); the decision values of the fitted model are
//! computed on the backend by `models::kernel_svm::KernelSvm`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Result, anyhow};
use burn::prelude::*;
use linfa::prelude::*;
use linfa_svm::Svm;
use ndarray::{Array1, ArrayView2};

use crate::data::batch::make_batch;
use crate::data::split::stratified_take;
use crate::models::Model;
use crate::models::kernel_svm::{KernelSvmConfig, kernel_bytes};
use crate::run_files::{self, Record};
use crate::tasks::records::module_part;
use crate::train::metrics;
use crate::train::{FitContext, LoopState, Outcome, Task};

/// Trains a `kernel-svm` run in one piece where the other kinds run the loop: the stratified
/// subset, the SMO fits, the solution loaded into `task` (a classifier holding an empty
/// `KernelSvm`), one train record (on the subset) and one validation record, and the checkpoint
/// of step 1. An interrupted fit leaves no checkpoint: resuming starts it over.
pub fn fit_run(
    ctx: &FitContext,
    cfg: &KernelSvmConfig,
    task: &mut dyn Task,
    device: &Device,
) -> Result<(Outcome, LoopState)> {
    let set = &ctx.data.train;
    let classes = ctx.data.source.classes.len();
    let all: Vec<usize> = (0..set.len()).collect();
    let n = cfg.subset.min(set.len());
    let chosen = stratified_take(&set.labels, &all, classes, n);
    let batch = make_batch(set, &chosen, &ctx.normalizer.tables(), None, 0);
    let subset = set.select(&chosen);
    let d = set.shape.pixels();
    let threads = crate::device::threads().clamp(1, classes);
    let quiet = ctx.options.quiet;
    if !quiet {
        println!(
            "kernel-svm: {classes} one-vs-rest RBF SVMs (C = {}) on {n} of {} training images, \
             {threads} at a time (linfa-svm SMO; each builds a {:.0} MiB kernel matrix)",
            cfg.c,
            set.len(),
            kernel_bytes(n) / 1048576.0
        );
    }
    let labels: Vec<u32> = subset.labels.clone();
    let progress = |done: usize, total: usize, seconds: f64| {
        if !quiet {
            println!("kernel-svm: {done}/{total} classes fitted ({seconds:.1}s)");
        }
    };
    let Some(solution) = solve(cfg, &batch.images, d, &labels, classes, threads, &progress)? else {
        return Ok((Outcome::Interrupted, LoopState::default()));
    };
    let fitted = cfg.init(set.shape, classes, device).fitted(
        Tensor::<2>::from_data(TensorData::new(batch.images, [n, d]), device),
        Tensor::<2>::from_data(TensorData::new(solution.coef.clone(), [n, classes]), device),
        Tensor::<1>::from_data(TensorData::new(solution.bias.clone(), [classes]), device),
        solution.gamma,
    );
    let mut parts = task.save()?;
    let model = module_part("model", &Model::KernelSvm(fitted))?;
    for part in parts.iter_mut().filter(|p| p.0 == "model") {
        *part = model.clone();
    }
    task.load(parts)?;

    let mut state = LoopState {
        epoch: 1,
        step: 1,
        elapsed_s: solution.seconds,
        epoch_times_s: vec![solution.seconds],
        ..LoopState::default()
    };
    let eval_batch = ctx.train.eval_batch_size;
    let record = |split: &str, values| Record {
        epoch: 1,
        step: 1,
        split: split.into(),
        scope: "epoch".into(),
        values,
        images_per_sec: n as f64 / solution.seconds.max(1e-9),
        elapsed_s: solution.seconds,
    };
    let mut train = task.evaluate(&subset, ctx.normalizer, eval_batch)?.metrics;
    train.insert(
        "support_vectors".into(),
        solution.distinct_support_vectors as f64,
    );
    train.insert("gamma".into(), solution.gamma);
    let mut line = format!(
        "kernel-svm: fitted in {:.1}s (γ = {:.3e}; {} distinct support vectors; per class {:?}); \
         train accuracy {:.4}",
        solution.seconds,
        solution.gamma,
        solution.distinct_support_vectors,
        solution.support_vectors,
        train.get("accuracy").copied().unwrap_or(f64::NAN)
    );
    metrics::append(&ctx.run.dir, &record("train", train))?;
    let mut best = false;
    if !ctx.data.val.is_empty() {
        let val = task
            .evaluate(&ctx.data.val, ctx.normalizer, eval_batch)?
            .metrics;
        if let Some(&acc) = val.get("accuracy") {
            line.push_str(&format!("  val accuracy {acc:.4}"));
            state.best = Some(acc);
            state.best_step = Some(1);
            best = true;
        }
        metrics::append(&ctx.run.dir, &record("val", val))?;
    }
    if !quiet {
        println!("{line}");
    }
    ctx.save(task, &state, best)?;
    let records = run_files::read_metrics(&ctx.run.dir)?;
    metrics::write_csv(&ctx.run.dir, &records, &task.spec())?;
    (ctx.on_epoch_end)(&records)?;
    Ok((Outcome::Completed, state))
}

/// The solution of the one-vs-rest problems.
#[derive(Debug, Clone)]
pub struct Solution {
    /// α, row-major `[images, classes]`.
    pub coef: Vec<f32>,
    /// b, one per class.
    pub bias: Vec<f32>,
    /// γ used (the "scale" rule resolved).
    pub gamma: f64,
    /// The number of support vectors of each class's SVM.
    pub support_vectors: Vec<usize>,
    /// Images with a non-zero α in some class.
    pub distinct_support_vectors: usize,
    /// Wall-clock seconds of the whole fit.
    pub seconds: f64,
}

/// One class's SVM: α (signed by the label), −ρ, its number of support vectors.
type ClassSolution = (Vec<f32>, f32, usize);

/// γ by scikit-learn's "scale" rule: 1 / (d · variance of all values).
pub fn scale_gamma(x: &[f32], d: usize) -> f64 {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    if var > 0.0 {
        1.0 / (d as f64 * var)
    } else {
        1.0 / d as f64
    }
}

/// Fits one binary SVM per class on `x` (`[n, d]` row-major, normalized pixels) with `labels`
/// in `0..classes`, on `threads` threads. `None` when Ctrl-C stopped it (between classes).
pub fn solve(
    cfg: &KernelSvmConfig,
    x: &[f32],
    d: usize,
    labels: &[u32],
    classes: usize,
    threads: usize,
    progress: &(dyn Fn(usize, usize, f64) + Sync),
) -> Result<Option<Solution>> {
    let n = labels.len();
    let start = Instant::now();
    let records = ArrayView2::from_shape((n, d), x).map_err(|e| anyhow!("{e}"))?;
    let gamma = if cfg.gamma > 0.0 {
        cfg.gamma
    } else {
        scale_gamma(x, d)
    };
    // linfa's Gaussian kernel is exp(−‖a − b‖² / eps).
    let params = Svm::<f32, bool>::params()
        .pos_neg_weights(cfg.c as f32, cfg.c as f32)
        .gaussian_kernel((1.0 / gamma) as f32)
        .eps(cfg.tolerance as f32)
        // linfa-svm 0.8.1's shrinking heuristic can step its active-set count below zero
        // (`do_shrinking`) and index out of bounds: SMO runs without shrinking.
        .shrinking(false);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<ClassSolution>>> = Mutex::new(vec![None; classes]);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, classes) {
            scope.spawn(|| {
                loop {
                    if crate::train::interrupted() || failure.lock().unwrap().is_some() {
                        return;
                    }
                    let class = next.fetch_add(1, Ordering::SeqCst);
                    if class >= classes {
                        return;
                    }
                    let targets: Array1<bool> =
                        labels.iter().map(|&y| y as usize == class).collect();
                    let dataset = DatasetBase::new(records, targets.view());
                    match params.fit(&dataset) {
                        Ok(model) => {
                            let sv = model.nsupport();
                            results.lock().unwrap()[class] = Some((model.alpha, -model.rho, sv));
                            let count = done.fetch_add(1, Ordering::SeqCst) + 1;
                            progress(count, classes, start.elapsed().as_secs_f64());
                        }
                        Err(e) => {
                            *failure.lock().unwrap() =
                                Some(anyhow!("the SVM of class {class} failed: {e}"));
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    let results = results.into_inner().unwrap();
    if results.iter().any(|r| r.is_none()) {
        return Ok(None);
    }
    let mut coef = vec![0f32; n * classes];
    let mut bias = Vec::with_capacity(classes);
    let mut support_vectors = Vec::with_capacity(classes);
    for (j, r) in results.into_iter().enumerate() {
        let (alpha, b, sv) = r.expect("every class solved");
        for (i, a) in alpha.into_iter().enumerate() {
            coef[i * classes + j] = a;
        }
        bias.push(b);
        support_vectors.push(sv);
    }
    let distinct_support_vectors = (0..n)
        .filter(|&i| {
            coef[i * classes..(i + 1) * classes]
                .iter()
                .any(|&a| a != 0.0)
        })
        .count();
    Ok(Some(Solution {
        coef,
        bias,
        gamma,
        support_vectors,
        distinct_support_vectors,
        seconds: start.elapsed().as_secs_f64(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three separable blobs in two dimensions, and points between them.
    fn blobs() -> (Vec<f32>, Vec<u32>) {
        let centres = [(0.0f32, 0.0f32), (4.0, 0.0), (0.0, 4.0)];
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (c, (cx, cy)) in centres.iter().enumerate() {
            for k in 0..12 {
                let a = k as f32 * std::f32::consts::FRAC_PI_6;
                x.extend_from_slice(&[cx + 0.6 * a.cos(), cy + 0.6 * a.sin()]);
                y.push(c as u32);
            }
        }
        (x, y)
    }

    fn decide(s: &Solution, x: &[f32], train: &[f32], d: usize, classes: usize) -> usize {
        let n = train.len() / d;
        let scores: Vec<f64> = (0..classes)
            .map(|j| {
                (0..n)
                    .map(|i| {
                        let d2: f32 = (0..d).map(|t| (x[t] - train[i * d + t]).powi(2)).sum();
                        s.coef[i * classes + j] as f64 * (-s.gamma * d2 as f64).exp()
                    })
                    .sum::<f64>()
                    + s.bias[j] as f64
            })
            .collect();
        (0..classes)
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap()
    }

    #[test]
    fn one_vs_rest_kernel_svms_separate_blobs_and_the_sign_convention_holds() {
        let (x, y) = blobs();
        let cfg = KernelSvmConfig {
            gamma: 0.5,
            c: 10.0,
            ..Default::default()
        };
        let s = solve(&cfg, &x, 2, &y, 3, 2, &|_, _, _| {})
            .unwrap()
            .unwrap();
        assert_eq!(s.support_vectors.len(), 3);
        assert!(s.support_vectors.iter().all(|&v| v > 0 && v < 36));
        // every training point and each blob's centre goes to its own class
        for (i, &label) in y.iter().enumerate() {
            assert_eq!(decide(&s, &x[i * 2..i * 2 + 2], &x, 2, 3), label as usize);
        }
        for (c, p) in [[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]].iter().enumerate() {
            assert_eq!(decide(&s, p, &x, 2, 3), c);
        }
        // α of class j is positive on its own images, negative on the others
        for (i, &label) in y.iter().enumerate() {
            for j in 0..3 {
                let a = s.coef[i * 3 + j];
                assert!(if label as usize == j {
                    a >= 0.0
                } else {
                    a <= 0.0
                });
            }
        }
    }

    #[test]
    fn gamma_scale_is_one_over_d_times_the_variance() {
        // values 0 and 2: variance 1
        let x = [0.0f32, 2.0, 0.0, 2.0];
        assert!((scale_gamma(&x, 2) - 0.5).abs() < 1e-12);
    }
}
