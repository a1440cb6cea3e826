//! The exact RBF-kernel SVM (`kind = "kernel-svm"`): the reference the approximate SVMs
//! (`kind = "svm"` with random Fourier features) are measured against. It is not trained by
//! gradient descent: `tasks::kernel_svm` solves one binary C-SVM per class (one-vs-rest) on a
//! stratified subset of the training images with linfa-svm's SMO solver, and the solution is put
//! into this module. The decision value of class j for an image x is
//!
//!   f_j(x) = Σᵢ α_ij · exp(−γ‖x − xᵢ‖²) + b_j,
//!
//! over the subset's images xᵢ (normalized pixels); α_ij = y_ij · a_ij is zero but for class j's
//! support vectors. The kernel matrix of the subset is held in memory, n² values per solver
//! thread: `subset` is bounded by `max_kernel_mib`.

use burn::module::Param;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::InputShape;

/// `[model] kind = "kernel-svm"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KernelSvmConfig {
    /// C of each binary C-SVM (scikit-learn's SVC `C`).
    pub c: f64,
    /// γ of the RBF kernel exp(−γ‖x − y‖²) on the normalized pixels; 0 = scikit-learn's
    /// "scale", 1 / (number of pixel values · their variance over the subset).
    pub gamma: f64,
    /// How many training images the SVM is fitted on (a stratified subset, the first of each
    /// class; all of them when the training set is smaller).
    pub subset: usize,
    /// The SMO solver's stopping tolerance on the KKT conditions (libsvm's and scikit-learn's
    /// `tol`).
    pub tolerance: f64,
    /// The memory the kernel matrices may take, in MiB: subset² · 4 bytes per solver thread (one
    /// thread per core, each fitting one class at a time).
    pub max_kernel_mib: usize,
}

impl Default for KernelSvmConfig {
    fn default() -> Self {
        Self {
            c: 10.0,
            gamma: 0.0,
            subset: 5000,
            tolerance: 1e-3,
            max_kernel_mib: 4096,
        }
    }
}

/// Bytes of one subset × subset kernel matrix of f32.
pub fn kernel_bytes(n: usize) -> f64 {
    (n as f64) * (n as f64) * 4.0
}

impl KernelSvmConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.c > 0.0 && self.c.is_finite()) {
            return Err(format!("c must be positive (got {})", self.c));
        }
        if !(self.gamma >= 0.0 && self.gamma.is_finite()) {
            return Err(format!("gamma must be ≥ 0 (got {})", self.gamma));
        }
        if !(self.tolerance > 0.0 && self.tolerance.is_finite()) {
            return Err(format!(
                "tolerance must be positive (got {})",
                self.tolerance
            ));
        }
        if self.subset < 2 {
            return Err(format!("subset must be at least 2 (got {})", self.subset));
        }
        self.check_memory(crate::device::threads())
    }

    /// The size limit: `threads` kernel matrices of subset² f32 must fit in `max_kernel_mib`.
    pub fn check_memory(&self, threads: usize) -> Result<(), String> {
        let threads = threads.max(1);
        let budget = self.max_kernel_mib as f64 * 1024.0 * 1024.0;
        let need = kernel_bytes(self.subset) * threads as f64;
        if need > budget {
            let most = ((budget / threads as f64 / 4.0).sqrt()).floor() as usize;
            return Err(format!(
                "subset = {} needs {threads} kernel matrices of {:.0} MiB (one per solver thread), \
                 {:.0} MiB in all; max_kernel_mib = {} allows at most {most} images. The exact \
                 kernel SVM's time grows with the square of the subset as well; for more images use \
                 kind = \"svm\" with features = \"rff\"",
                self.subset,
                kernel_bytes(self.subset) / 1048576.0,
                need / 1048576.0,
                self.max_kernel_mib
            ));
        }
        Ok(())
    }

    /// An unfitted SVM (all coefficients zero) of the shape the config gives: `subset` rows of
    /// support vectors (unused rows stay zero when the training set is smaller).
    pub fn init(&self, input: InputShape, classes: usize, device: &Device) -> KernelSvm {
        let fixed = |t: Tensor<2>| Param::from_tensor(t).set_require_grad(false);
        KernelSvm {
            support: fixed(Tensor::zeros([self.subset, input.pixels()], device)),
            coef: fixed(Tensor::zeros([self.subset, classes], device)),
            bias: Param::from_tensor(Tensor::zeros([classes], device)).set_require_grad(false),
            gamma: Param::from_tensor(Tensor::zeros([1], device)).set_require_grad(false),
        }
    }
}

/// A fitted (or empty) kernel SVM. Nothing in it is trained by gradients.
#[derive(Module, Debug)]
pub struct KernelSvm {
    /// The subset's normalized images, flattened `[subset, pixels]`.
    support: Param<Tensor<2>>,
    /// α: one column per class `[subset, classes]`.
    coef: Param<Tensor<2>>,
    /// b, one per class.
    bias: Param<Tensor<1>>,
    /// γ as fitted (the "scale" rule resolved).
    gamma: Param<Tensor<1>>,
}

impl KernelSvm {
    /// The fitted SVM: `support` `[n, d]` (n ≤ subset rows; the rest stay zero), α `[n, k]`,
    /// b `[k]`, γ.
    pub fn fitted(
        self,
        support: Tensor<2>,
        coef: Tensor<2>,
        bias: Tensor<1>,
        gamma: f64,
    ) -> KernelSvm {
        let [n, d] = support.dims();
        let [rows, k] = self.coef.dims();
        let device = support.device();
        let pad = |t: Tensor<2>, cols: usize| {
            if n == rows {
                t
            } else {
                Tensor::cat(vec![t, Tensor::zeros([rows - n, cols], &device)], 0)
            }
        };
        let fixed = |t: Tensor<2>| Param::from_tensor(t).set_require_grad(false);
        KernelSvm {
            support: fixed(pad(support, d)),
            coef: fixed(pad(coef, k)),
            bias: Param::from_tensor(bias).set_require_grad(false),
            gamma: Param::from_tensor(Tensor::from_floats([gamma as f32], &device))
                .set_require_grad(false),
        }
    }

    /// The RBF kernel between images `[b, c, h, w]` and the support rows: `[b, subset]`.
    pub fn kernel(&self, images: Tensor<4>) -> Tensor<2> {
        let x = images.flatten::<2>(1, 3);
        let s = self.support.val();
        let xx = x.clone().powf_scalar(2.0).sum_dim(1); // [b, 1]
        let ss = s.clone().powf_scalar(2.0).sum_dim(1).transpose(); // [1, n]
        let d2 = (xx + ss - x.matmul(s.transpose()).mul_scalar(2.0)).clamp_min(0.0);
        (d2 * self.gamma.val().reshape([1, 1]).neg()).exp()
    }

    /// Images → one decision value per class `[b, classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let [k] = self.bias.dims();
        self.kernel(images).matmul(self.coef.val()) + self.bias.val().reshape([1, k])
    }
}
