//! The learning-rate schedule as a pure function of the global step, so a resumed run needs no
//! scheduler state: warm-up, then constant, step decay or cosine decay.
//!
//! The schedule is a factor in [0, 1] of the peak: a task with several optimizers multiplies it
//! into each one's base learning rate, so all of them follow the same shape.

use super::config::{ScheduleKind, TrainConfig};

/// The schedule's factor (1 at the peak) for optimizer step `step` (0-based) of a run with
/// `steps_per_epoch`. The warm-up rises linearly to the peak and never passes it, whatever its
/// (fractional) number of steps.
pub fn factor(t: &TrainConfig, step: u64, steps_per_epoch: usize) -> f64 {
    let spe = steps_per_epoch.max(1) as f64;
    let total = (t.epochs as f64 * spe).max(1.0);
    let warmup = t.warmup_epochs * spe;
    let s = step as f64;
    if s < warmup {
        return ((s + 1.0) / warmup).min(1.0);
    }
    // the floor as a factor of the one learning rate (`min_lr` is 0 for a run with several)
    let floor = match t.min_lr {
        0.0 => 0.0,
        m => m / t.the_optimizer().lr,
    };
    match t.schedule {
        ScheduleKind::Constant => 1.0,
        ScheduleKind::Step => t.step_gamma.powi((s / spe) as i32 / t.step_epochs as i32),
        ScheduleKind::Cosine => {
            let progress = ((s - warmup) / (total - warmup).max(1.0)).clamp(0.0, 1.0);
            floor + 0.5 * (1.0 - floor) * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let mut t = TrainConfig {
            epochs: 10,
            lr: Some(1.0),
            ..Default::default()
        };
        t.schedule = ScheduleKind::Cosine;
        assert_eq!(factor(&t, 0, 100), 1.0);
        assert!((factor(&t, 500, 100) - 0.5).abs() < 1e-9);
        assert!(factor(&t, 999, 100) < 1e-3);
        t.schedule = ScheduleKind::Step;
        t.step_epochs = 3;
        t.step_gamma = 0.1;
        assert_eq!(factor(&t, 299, 100), 1.0);
        assert!((factor(&t, 300, 100) - 0.1).abs() < 1e-12);
        t.schedule = ScheduleKind::Constant;
        t.warmup_epochs = 1.0;
        assert!((factor(&t, 49, 100) - 0.5).abs() < 1e-12);
        assert_eq!(factor(&t, 100, 100), 1.0);
    }

    #[test]
    fn warm_up_never_overshoots_the_peak() {
        let mut t = TrainConfig {
            epochs: 10,
            lr: Some(1.0),
            schedule: ScheduleKind::Constant,
            ..Default::default()
        };
        // 2.5 warm-up steps: 0.4, 0.8, then the peak (not 1.2)
        t.warmup_epochs = 0.025;
        let lrs: Vec<f64> = (0..5).map(|s| factor(&t, s, 100)).collect();
        assert!(
            (lrs[0] - 0.4).abs() < 1e-12 && (lrs[1] - 0.8).abs() < 1e-12,
            "{lrs:?}"
        );
        assert!(lrs.iter().all(|&l| l <= 1.0), "{lrs:?}");
        assert_eq!(lrs[2], 1.0);
        // under one step of warm-up: the first step is at the peak, not at lr / warmup
        t.warmup_epochs = 0.005;
        assert_eq!(factor(&t, 0, 100), 1.0);
        // the cosine schedule after a fractional warm-up starts at the peak and only decays
        t.schedule = ScheduleKind::Cosine;
        t.warmup_epochs = 0.025;
        let lrs: Vec<f64> = (0..1000).map(|s| factor(&t, s, 100)).collect();
        assert!(lrs.iter().all(|&l| l <= 1.0), "{:?}", &lrs[..5]);
        assert!(lrs[3..].windows(2).all(|w| w[1] <= w[0]));
    }
}
