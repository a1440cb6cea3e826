//! Image data: formats (IDX, CIFAR-10 binary, image folders), the built-in sample, where named
//! datasets are found, the train/validation/test splits, and batching.
//!
//! Every split is decoded once into one contiguous `u8` buffer (N × C × H × W); batches are cut
//! from it by index (see `batch`).

pub mod batch;
pub mod cifar;
pub mod config;
pub mod folder;
pub mod idx;
pub mod load;
pub mod set;
pub mod sources;
pub mod split;

pub use config::{AugmentConfig, DataConfig, SyntheticConfig};
pub use load::{DataSource, Splits, SyntheticSource, load};
pub use set::{FileRecord, ImageSet, InputShape, RawDataset};
pub use sources::check_dataset_name;
pub use split::stratified_split;
