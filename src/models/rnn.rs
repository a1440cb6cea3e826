//! Recurrent models: an image read as a sequence (one row or column per time step) by stacked
//! LSTM or GRU layers, then a linear classifier on the final hidden state or the mean over time.
//!
//! `SeqEncoder` is the recurrent part shared with `cnn-rnn`.

use anyhow::Result;
use burn::nn::gru::{BiGru, BiGruConfig, Gru, GruConfig};
use burn::nn::lstm::{BiLstm, BiLstmConfig, Lstm, LstmConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::InputShape;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cell {
    Lstm,
    Gru,
}

/// What the classifier reads from the sequence of hidden states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Readout {
    /// The final hidden state (both directions' finals when bidirectional).
    Last,
    /// The mean of the hidden states over time.
    Mean,
}

/// How the image becomes a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scan {
    /// One row per time step: `height` steps of `width × channels` features.
    #[serde(rename = "rows")]
    Rows,
    /// One column per time step: `width` steps of `height × channels` features.
    #[serde(rename = "columns")]
    Columns,
    /// Rows and columns read by two encoders; their features are concatenated.
    #[serde(rename = "rows+columns")]
    RowsColumns,
}

/// The recurrent layers' settings, shared by `rnn` and `cnn-rnn`.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqSpec {
    pub cell: Cell,
    pub hidden: usize,
    pub layers: usize,
    pub bidirectional: bool,
    pub dropout: f64,
    pub readout: Readout,
}

impl SeqSpec {
    pub fn validate(&self) -> Result<(), String> {
        if self.hidden == 0 {
            return Err("hidden must be at least 1".into());
        }
        if self.layers == 0 {
            return Err("layers must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout must be in [0, 1) (got {})", self.dropout));
        }
        Ok(())
    }

    /// Width of the features the encoder hands to the classifier.
    pub fn output_width(&self) -> usize {
        self.hidden * if self.bidirectional { 2 } else { 1 }
    }
}

/// Declares a model config struct holding the recurrent keys (the one definition of them, shared
/// by `rnn` and `cnn-rnn`) besides its own fields, with `spec()` to read them and `with_spec` to
/// set them. serde's `flatten` cannot do this: it does not work with `deny_unknown_fields`.
macro_rules! recurrent_config {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// `lstm` or `gru`.
            pub cell: $crate::models::rnn::Cell,
            /// Units per direction.
            pub hidden: usize,
            /// Stacked recurrent layers.
            pub layers: usize,
            /// Read each sequence both ways.
            pub bidirectional: bool,
            /// Dropout between recurrent layers and before the classifier.
            pub dropout: f64,
            /// `last` (final hidden state) or `mean` (over time).
            pub readout: $crate::models::rnn::Readout,
        }

        impl $name {
            pub fn spec(&self) -> $crate::models::rnn::SeqSpec {
                $crate::models::rnn::SeqSpec {
                    cell: self.cell,
                    hidden: self.hidden,
                    layers: self.layers,
                    bidirectional: self.bidirectional,
                    dropout: self.dropout,
                    readout: self.readout,
                }
            }

            /// The config with its own fields `$field` and the recurrent keys from `spec`.
            fn with_spec($($field: $ty,)* spec: $crate::models::rnn::SeqSpec) -> Self {
                Self {
                    $($field,)*
                    cell: spec.cell,
                    hidden: spec.hidden,
                    layers: spec.layers,
                    bidirectional: spec.bidirectional,
                    dropout: spec.dropout,
                    readout: spec.readout,
                }
            }
        }
    };
}
pub(crate) use recurrent_config;

recurrent_config! {
    /// `[model] kind = "rnn"`.
    pub struct RnnConfig {
        /// `rows`, `columns` or `rows+columns`.
        pub scan: Scan,
    }
}

impl Default for RnnConfig {
    fn default() -> Self {
        Self::with_spec(
            Scan::Rows,
            SeqSpec {
                cell: Cell::Lstm,
                hidden: 128,
                layers: 2,
                bidirectional: false,
                dropout: 0.2,
                readout: Readout::Last,
            },
        )
    }
}

impl RnnConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.spec().validate()
    }

    pub fn init(&self, input: InputShape, classes: usize, device: &Device) -> Result<Rnn> {
        let spec = self.spec();
        let row_features = input.channels * input.width;
        let column_features = input.channels * input.height;
        let rows = matches!(self.scan, Scan::Rows | Scan::RowsColumns)
            .then(|| SeqEncoder::init(&spec, row_features, device));
        let columns = matches!(self.scan, Scan::Columns | Scan::RowsColumns)
            .then(|| SeqEncoder::init(&spec, column_features, device));
        let encoders = rows.is_some() as usize + columns.is_some() as usize;
        Ok(Rnn {
            rows,
            columns,
            dropout: DropoutConfig::new(self.dropout).init(),
            output: LinearConfig::new(spec.output_width() * encoders, classes).init(device),
        })
    }
}

/// One recurrent layer of any cell and direction.
#[derive(Module, Debug)]
pub enum RecurrentLayer {
    Lstm(Lstm),
    Gru(Gru),
    BiLstm(BiLstm),
    BiGru(BiGru),
}

impl RecurrentLayer {
    fn init(cell: Cell, bidirectional: bool, input: usize, hidden: usize, device: &Device) -> Self {
        match (cell, bidirectional) {
            (Cell::Lstm, false) => {
                RecurrentLayer::Lstm(LstmConfig::new(input, hidden, true).init(device))
            }
            (Cell::Gru, false) => {
                RecurrentLayer::Gru(GruConfig::new(input, hidden, true).init(device))
            }
            (Cell::Lstm, true) => {
                RecurrentLayer::BiLstm(BiLstmConfig::new(input, hidden, true).init(device))
            }
            (Cell::Gru, true) => {
                RecurrentLayer::BiGru(BiGruConfig::new(input, hidden, true).init(device))
            }
        }
    }

    /// `[b, t, f]` → `[b, t, hidden × directions]` (on flex, each direction as one fused op).
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            RecurrentLayer::Lstm(l) => fovea_kernels::lstm(l, x),
            RecurrentLayer::Gru(l) => fovea_kernels::gru(l, x),
            RecurrentLayer::BiLstm(l) => fovea_kernels::bi_lstm(l, x),
            RecurrentLayer::BiGru(l) => fovea_kernels::bi_gru(l, x),
        }
    }
}

/// Stacked recurrent layers with dropout between them, and the readout.
#[derive(Module, Debug)]
pub struct SeqEncoder {
    layers: Vec<RecurrentLayer>,
    dropout: Dropout,
    #[module(skip)]
    hidden: usize,
    #[module(skip)]
    bidirectional: bool,
    #[module(skip)]
    mean: bool,
}

impl SeqEncoder {
    pub fn init(spec: &SeqSpec, input: usize, device: &Device) -> Self {
        let layers = (0..spec.layers)
            .map(|i| {
                let d_in = if i == 0 { input } else { spec.output_width() };
                RecurrentLayer::init(spec.cell, spec.bidirectional, d_in, spec.hidden, device)
            })
            .collect();
        Self {
            layers,
            dropout: DropoutConfig::new(spec.dropout).init(),
            hidden: spec.hidden,
            bidirectional: spec.bidirectional,
            mean: spec.readout == Readout::Mean,
        }
    }

    /// `[b, t, f]` → `[b, hidden × directions]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            if i > 0 {
                x = fovea_kernels::dropout(&self.dropout, x);
            }
            x = layer.forward(x); // [b, t, h·dirs]
        }
        let [b, t, f] = x.dims();
        if self.mean {
            return x.mean_dim(1).reshape([b, f]);
        }
        let last = x
            .clone()
            .slice([0..b, t - 1..t, 0..self.hidden])
            .reshape([b, self.hidden]);
        if !self.bidirectional {
            return last;
        }
        // The reverse direction ends at the first time step.
        let first = x
            .slice([0..b, 0..1, self.hidden..f])
            .reshape([b, self.hidden]);
        Tensor::cat(vec![last, first], 1) // [b, 2·hidden]
    }
}

/// Images as sequences: `[b, c, h, w]` → rows `[b, h, c·w]` or columns `[b, w, c·h]`.
pub fn rows(images: Tensor<4>) -> Tensor<3> {
    let [b, c, h, w] = images.dims();
    images.permute([0, 2, 1, 3]).reshape([b, h, c * w])
}

pub fn columns(images: Tensor<4>) -> Tensor<3> {
    let [b, c, h, w] = images.dims();
    images.permute([0, 3, 1, 2]).reshape([b, w, c * h])
}

#[derive(Module, Debug)]
pub struct Rnn {
    rows: Option<SeqEncoder>,
    columns: Option<SeqEncoder>,
    dropout: Dropout,
    output: Linear,
}

impl Rnn {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut features = Vec::new();
        if let Some(enc) = &self.rows {
            features.push(enc.forward(rows(images.clone())));
        }
        if let Some(enc) = &self.columns {
            features.push(enc.forward(columns(images)));
        }
        let x = Tensor::cat(features, 1); // [b, encoders·hidden·dirs]
        self.output
            .forward(fovea_kernels::dropout(&self.dropout, x)) // [b, classes]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_shapes_for_every_scan_cell_and_direction() {
        let device = Device::flex();
        for scan in [Scan::Rows, Scan::Columns, Scan::RowsColumns] {
            for cell in [Cell::Lstm, Cell::Gru] {
                for bidirectional in [false, true] {
                    for readout in [Readout::Last, Readout::Mean] {
                        let cfg = RnnConfig {
                            scan,
                            cell,
                            hidden: 8,
                            layers: 2,
                            bidirectional,
                            dropout: 0.1,
                            readout,
                        };
                        for (c, h, w) in [(1, 6, 5), (3, 4, 7)] {
                            let model = cfg
                                .init(
                                    InputShape {
                                        channels: c,
                                        height: h,
                                        width: w,
                                    },
                                    10,
                                    &device,
                                )
                                .unwrap();
                            let y = model.forward(Tensor::<4>::zeros([3, c, h, w], &device));
                            assert_eq!(y.dims(), [3, 10], "{cfg:?} on {c}×{h}×{w}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn rows_and_columns_lay_out_pixels_in_order() {
        let device = Device::flex();
        // one image, 2 channels of 2×3: values 0..12
        let x = Tensor::<1>::from_floats(
            (0..12).map(|v| v as f32).collect::<Vec<_>>().as_slice(),
            &device,
        )
        .reshape([1, 2, 2, 3]);
        let r: Vec<f32> = rows(x.clone())
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap();
        // row 0: channel 0 row 0 (0,1,2), channel 1 row 0 (6,7,8)
        assert_eq!(&r[..6], &[0.0, 1.0, 2.0, 6.0, 7.0, 8.0]);
        let c: Vec<f32> = columns(x)
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap();
        // column 0: channel 0 (0,3), channel 1 (6,9)
        assert_eq!(&c[..4], &[0.0, 3.0, 6.0, 9.0]);
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec().unwrap()
    }

    /// The bidirectional `last` readout is the forward direction's state at the last step and the
    /// backward direction's state at the first step, in that order: each has read the whole image.
    #[test]
    fn bidirectional_last_readout_takes_each_direction_where_it_ends() {
        let device = Device::flex();
        device.seed(5);
        for cell in [Cell::Lstm, Cell::Gru] {
            let h = 3;
            let spec = SeqSpec {
                cell,
                hidden: h,
                layers: 1,
                bidirectional: true,
                dropout: 0.0,
                readout: Readout::Last,
            };
            let enc = SeqEncoder::init(&spec, 4, &device);
            let x = Tensor::<3>::random([2, 5, 4], burn::tensor::Distribution::Default, &device);
            let out = enc.forward(x.clone()); // [2, 2h]
            let states = enc.layers[0].forward(x.clone()); // [2, 5, 2h]
            let expected = Tensor::cat(
                vec![
                    states.clone().slice([0..2, 4..5, 0..h]).reshape([2, h]),
                    states.slice([0..2, 0..1, h..2 * h]).reshape([2, h]),
                ],
                1,
            );
            assert_eq!(values(out.clone()), values(expected), "{cell:?}");
            // Changing only the first or only the last row changes both halves of the readout.
            for t in [0, 4] {
                let bump = Tensor::<3>::zeros([2, 5, 4], &device)
                    .slice_assign([0..2, t..t + 1, 0..4], Tensor::ones([2, 1, 4], &device));
                let moved = values(enc.forward(x.clone() + bump));
                let before = values(out.clone());
                for half in [0..h, h..2 * h] {
                    let changed = half.clone().any(|i| (moved[i] - before[i]).abs() > 1e-6);
                    assert!(
                        changed,
                        "{cell:?}: row {t} does not reach features {half:?}"
                    );
                }
            }
        }
    }
}
