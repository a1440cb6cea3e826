//! The learning rate as a pure function of the global step, so a resumed run needs no scheduler
//! state: warm-up, then constant, step decay or cosine decay.

use crate::config::{ScheduleKind, TrainConfig};

/// Learning rate for optimizer step `step` (0-based) of a run with `steps_per_epoch`.
pub fn lr_at(t: &TrainConfig, step: u64, steps_per_epoch: usize) -> f64 {
    let spe = steps_per_epoch.max(1) as f64;
    let total = (t.epochs as f64 * spe).max(1.0);
    let warmup = t.warmup_epochs * spe;
    let s = step as f64;
    if s < warmup {
        return t.lr * (s + 1.0) / warmup;
    }
    match t.schedule {
        ScheduleKind::Constant => t.lr,
        ScheduleKind::Step => t.lr * t.step_gamma.powi((s / spe) as i32 / t.step_epochs as i32),
        ScheduleKind::Cosine => {
            let progress = ((s - warmup) / (total - warmup).max(1.0)).clamp(0.0, 1.0);
            t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
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
            lr: 1.0,
            ..Default::default()
        };
        t.schedule = ScheduleKind::Cosine;
        assert_eq!(lr_at(&t, 0, 100), 1.0);
        assert!((lr_at(&t, 500, 100) - 0.5).abs() < 1e-9);
        assert!(lr_at(&t, 999, 100) < 1e-3);
        t.schedule = ScheduleKind::Step;
        t.step_epochs = 3;
        t.step_gamma = 0.1;
        assert_eq!(lr_at(&t, 299, 100), 1.0);
        assert!((lr_at(&t, 300, 100) - 0.1).abs() < 1e-12);
        t.schedule = ScheduleKind::Constant;
        t.warmup_epochs = 1.0;
        assert!((lr_at(&t, 49, 100) - 0.5).abs() < 1e-12);
        assert_eq!(lr_at(&t, 100, 100), 1.0);
    }
}
