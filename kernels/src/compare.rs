//! The comparison every parity test uses: the largest difference between two results, which
//! fails where a plain fold would pass (a NaN, an infinity, or lengths that differ).

/// The largest absolute difference between `a` and `b`; an error (naming the index) when their
/// lengths differ or either holds a value that is not finite.
pub fn max_difference(a: &[f32], b: &[f32]) -> Result<f32, String> {
    if a.len() != b.len() {
        return Err(format!("{} values against {}", a.len(), b.len()));
    }
    let mut worst = 0f32;
    for (i, (p, q)) in a.iter().zip(b).enumerate() {
        if !p.is_finite() || !q.is_finite() {
            return Err(format!("value {i} is {p} against {q}"));
        }
        worst = worst.max((p - q).abs());
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_an_infinity_or_a_length_mismatch_is_an_error() {
        assert_eq!(max_difference(&[1.0, 2.0], &[1.5, 2.0]), Ok(0.5));
        assert!(max_difference(&[1.0, f32::NAN], &[1.0, 2.0]).is_err());
        assert!(max_difference(&[1.0, 2.0], &[1.0, f32::NAN]).is_err());
        assert!(max_difference(&[f32::INFINITY], &[f32::INFINITY]).is_err());
        assert!(max_difference(&[1.0, 2.0], &[1.0]).is_err());
    }
}
