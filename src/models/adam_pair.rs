//! The optimizer keys the two-network models (`gan`, `restore`) share.

/// Checks the two Adam learning rates and the betas they share (the keys of `gan` and
/// `restore`).
pub fn check_adam_pair(lr_g: f64, lr_d: f64, beta1: f64, beta2: f64) -> Result<(), String> {
    for (key, v) in [("lr_g", lr_g), ("lr_d", lr_d)] {
        if !(v > 0.0 && v.is_finite()) {
            return Err(format!("{key} must be positive (got {v})"));
        }
    }
    for (key, v) in [("beta1", beta1), ("beta2", beta2)] {
        if !(0.0..1.0).contains(&v) {
            return Err(format!("{key} must be in [0, 1) (got {v})"));
        }
    }
    Ok(())
}
