//! The Fréchet distance between two sets of feature vectors, each summarized by a Gaussian
//! (mean μ, covariance Σ):
//!
//! ```text
//! FID = ‖μ₁ − μ₂‖² + tr(Σ₁) + tr(Σ₂) − 2·tr((Σ₁^½ Σ₂ Σ₁^½)^½)
//! ```
//!
//! (tr((Σ₁Σ₂)^½) equals tr((Σ₁^½ Σ₂ Σ₁^½)^½), whose argument is symmetric positive semi-definite,
//! so both square roots come from symmetric eigendecompositions.)

use anyhow::{Result, bail};
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// Mean and covariance of a set of feature vectors.
#[derive(Debug, Clone)]
pub struct Gaussian {
    pub mean: DVector<f64>,
    pub cov: DMatrix<f64>,
}

impl Gaussian {
    /// Fits `rows` feature vectors of `dim` values each, stored row after row in `features`
    /// (covariance with the n − 1 denominator).
    pub fn fit(features: &[f32], dim: usize) -> Result<Self> {
        if dim == 0 || features.len() % dim != 0 {
            bail!("{} feature values are not rows of {dim}", features.len());
        }
        let n = features.len() / dim;
        if n < 2 {
            bail!("a covariance needs at least 2 feature vectors (got {n})");
        }
        let x = DMatrix::from_row_slice(n, dim, features).map(f64::from); // [n, dim]
        let mean = x.row_mean().transpose(); // [dim]
        let centered = DMatrix::from_fn(n, dim, |i, j| x[(i, j)] - mean[j]);
        let cov = centered.transpose() * &centered / (n as f64 - 1.0);
        Ok(Self { mean, cov })
    }
}

/// The square root of a symmetric positive semi-definite matrix (negative eigenvalues from
/// rounding are taken as 0).
fn sqrt_psd(m: DMatrix<f64>) -> DMatrix<f64> {
    let e = SymmetricEigen::new(m);
    let root = e.eigenvalues.map(|v| v.max(0.0).sqrt());
    &e.eigenvectors * DMatrix::from_diagonal(&root) * e.eigenvectors.transpose()
}

/// The Fréchet distance between two Gaussians.
pub fn frechet(a: &Gaussian, b: &Gaussian) -> f64 {
    let d = &a.mean - &b.mean;
    let ra = sqrt_psd(a.cov.clone());
    let inner = &ra * &b.cov * &ra;
    let inner = (&inner + inner.transpose()) * 0.5; // symmetric up to rounding
    let cross: f64 = SymmetricEigen::new(inner)
        .eigenvalues
        .iter()
        .map(|v| v.max(0.0).sqrt())
        .sum();
    (d.dot(&d) + a.cov.trace() + b.cov.trace() - 2.0 * cross).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batch::standard_normal;
    use rand::SeedableRng;

    fn normal_rows(n: usize, mean: &[f64], std: &[f64], seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n * mean.len());
        for _ in 0..n {
            for (m, s) in mean.iter().zip(std) {
                out.push((m + s * standard_normal(&mut rng)) as f32);
            }
        }
        out
    }

    #[test]
    fn a_set_against_itself_is_zero() {
        let x = normal_rows(500, &[0.0, 1.0, -2.0], &[1.0, 0.5, 2.0], 1);
        let g = Gaussian::fit(&x, 3).unwrap();
        assert!(frechet(&g, &g).abs() < 1e-9, "{}", frechet(&g, &g));
    }

    #[test]
    fn two_gaussians_match_the_closed_form() {
        // For diagonal covariances, FID = ‖μ₁ − μ₂‖² + Σ (σ₁ᵢ − σ₂ᵢ)².
        let a = Gaussian {
            mean: DVector::from_vec(vec![0.0, 1.0]),
            cov: DMatrix::from_diagonal(&DVector::from_vec(vec![4.0, 1.0])),
        };
        let b = Gaussian {
            mean: DVector::from_vec(vec![3.0, -1.0]),
            cov: DMatrix::from_diagonal(&DVector::from_vec(vec![1.0, 9.0])),
        };
        let want = 9.0 + 4.0 + (2.0f64 - 1.0).powi(2) + (1.0f64 - 3.0).powi(2);
        assert!((frechet(&a, &b) - want).abs() < 1e-9, "{}", frechet(&a, &b));
        // A full covariance: rotating both by the same rotation leaves the distance unchanged.
        let (c, s) = (0.6f64, 0.8f64);
        let r = DMatrix::from_row_slice(2, 2, &[c, -s, s, c]);
        let rot = |g: &Gaussian| Gaussian {
            mean: &r * &g.mean,
            cov: &r * &g.cov * r.transpose(),
        };
        assert!((frechet(&rot(&a), &rot(&b)) - want).abs() < 1e-9);
        // Sampled sets approach the closed form.
        let xa = normal_rows(20_000, &[0.0, 1.0], &[2.0, 1.0], 2);
        let xb = normal_rows(20_000, &[3.0, -1.0], &[1.0, 3.0], 3);
        let got = frechet(
            &Gaussian::fit(&xa, 2).unwrap(),
            &Gaussian::fit(&xb, 2).unwrap(),
        );
        assert!((got - want).abs() < 0.3, "{got} vs {want}");
    }

    #[test]
    fn too_few_rows_are_refused() {
        assert!(Gaussian::fit(&[1.0, 2.0], 2).is_err());
        assert!(Gaussian::fit(&[1.0, 2.0, 3.0], 2).is_err());
    }
}
