//! Image restoration on the host: damage (`damage`), the classical repairs it is measured
//! against (`classical`), and the quality measures PSNR and SSIM (`quality`), on images of
//! floats in [0, 1] (`pixels`); and the `damage` and `restore` commands on image files (`files`). The restoring network is `models::restore`, its training
//! `tasks::restore`.

pub mod classical;
pub mod damage;
pub mod files;
pub mod pixels;
pub mod quality;

pub use damage::{DamageConfig, Damaged, HolePlace};
pub use pixels::Image;
