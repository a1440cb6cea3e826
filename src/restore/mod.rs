//! Image restoration on the host: damage (`damage`), the classical repairs it is measured
//! against (`classical`), and the quality measures PSNR and SSIM (`quality`), on images of
//! floats in [0, 1] (`pixels`). The `damage` and `restore` commands are `repair`. The restoring network is `models::restore`, its training
//! `tasks::restore`.

pub mod classical;
pub mod damage;
pub mod pixels;
pub mod quality;

pub use damage::{DamageConfig, Damaged, HolePlace};
pub use pixels::Image;
