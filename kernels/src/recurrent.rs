//! Burn's recurrent layers (`Lstm`, `Gru` and their bidirectional forms) as one op per
//! direction: all time steps' input products in one matrix product, then the time loop with
//! each step's hidden product and its gates in one pass. Burn's layers make about 20 tensor ops
//! per step, each with its own pass, allocation and (in training) autodiff node.
//!
//! Batch rows never meet in a recurrent layer, so each task takes a fixed group of rows through
//! the whole sequence, forward and backward, with no step waiting for the others. The backward
//! pass runs the time loop backwards from what the forward pass kept (the gates' values, the
//! LSTM's cell states, the outputs), then the weights' gradients as one product per task, added
//! in task order: results do not depend on the thread count.
//!
//! The gates' arithmetic is Burn's, operation for operation (its sigmoid, `tanh`, and its order
//! of additions and products); the matrix products sum in another order than Burn's, so the
//! results agree with Burn's layers to rounding (tested below: 1e-5 on outputs and gradients).

use burn::backend::Dispatch;
use burn::nn::GateController;
use burn::nn::activation::Activation;
use burn::nn::gru::{BiGru, Gru};
use burn::nn::lstm::{BiLstm, Lstm};
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use crate::conv::{column_sums, product, sum_in_order};
use crate::extension::{Cell, FlexKernels, FlexTensor, on_flex};
use crate::simd::{sigmoid, tanh, values};

/// `layer` (Burn's `Lstm`, from a zero state) on `x [b, t, i]` → `[b, t, h]`: on flex as one op,
/// anywhere else (or with a setting the op does not compute) Burn's layer.
pub fn lstm(layer: &Lstm, x: Tensor<3>) -> Tensor<3> {
    match lstm_weights(layer).filter(|_| on_flex(&x)) {
        Some(w) => fused(x, w, Cell::Lstm, layer.reverse),
        None => layer.forward(x, None).0,
    }
}

/// `layer` (Burn's `BiLstm`) on `x [b, t, i]` → `[b, t, 2h]`, as `lstm` per direction.
pub fn bi_lstm(layer: &BiLstm, x: Tensor<3>) -> Tensor<3> {
    let weights = [&layer.forward, &layer.reverse].map(lstm_weights);
    match bidirectional(x.clone(), weights, layer.batch_first, Cell::Lstm) {
        Some(y) => y,
        None => layer.forward(x, None).0,
    }
}

/// `layer` (Burn's `Gru`, from a zero state) on `x [b, t, i]` → `[b, t, h]`, as `lstm`.
pub fn gru(layer: &Gru, x: Tensor<3>) -> Tensor<3> {
    match gru_weights(layer).filter(|_| on_flex(&x)) {
        Some(w) => fused(x, w, Cell::Gru, false),
        None => layer.forward(x, None),
    }
}

/// `layer` (Burn's `BiGru`) on `x [b, t, i]` → `[b, t, 2h]`, as `gru` per direction.
pub fn bi_gru(layer: &BiGru, x: Tensor<3>) -> Tensor<3> {
    let weights = [&layer.forward, &layer.reverse].map(gru_weights);
    match bidirectional(x.clone(), weights, layer.batch_first, Cell::Gru) {
        Some(y) => y,
        None => layer.forward(x, None).0,
    }
}

/// Both directions as fused ops, their outputs side by side; `None` (Burn's layer then) off flex
/// or where a direction has a setting the op does not compute.
fn bidirectional(
    x: Tensor<3>,
    [forward, reverse]: [Option<Weights>; 2],
    batch_first: bool,
    cell: Cell,
) -> Option<Tensor<3>> {
    let (forward, reverse) = (forward?, reverse?);
    if !on_flex(&x) || !batch_first {
        return None;
    }
    let ahead = fused(x.clone(), forward, cell, false);
    Some(Tensor::cat(vec![ahead, fused(x, reverse, cell, true)], 2))
}

/// A layer's gates' weights stacked side by side: input weights `[i, g·h]` and biases, hidden
/// weights `[h, g·h]` and biases (the stacking is differentiated, so each gate's own parameters
/// get their gradients).
type Stacked = [Tensor<2>; 2];
type Weights = (Stacked, Stacked);

fn stack(gates: &[&GateController]) -> Option<Weights> {
    let side = |linear: fn(&GateController) -> &burn::nn::Linear| -> Option<Stacked> {
        let weights = gates.iter().map(|g| linear(g).weight.val()).collect();
        let biases = gates
            .iter()
            .map(|g| linear(g).bias.as_ref().map(|b| b.val().unsqueeze::<2>()))
            .collect::<Option<Vec<_>>>()?;
        Some([Tensor::cat(weights, 1), Tensor::cat(biases, 1)])
    };
    Some((
        side(|g| &g.input_transform)?,
        side(|g| &g.hidden_transform)?,
    ))
}

/// Sigmoid gates and tanh elsewhere, as the op computes them.
fn standard(gate: &Activation, others: &[&Activation]) -> bool {
    matches!(gate, Activation::Sigmoid(_))
        && others.iter().all(|a| matches!(a, Activation::Tanh(_)))
}

fn lstm_weights(l: &Lstm) -> Option<Weights> {
    let forget = l.forget_gate.as_ref()?;
    let plain = l.batch_first && l.clip.is_none() && !l.input_forget;
    let acts = [&l.cell_activation, &l.hidden_activation];
    if !plain || !standard(&l.gate_activation, &acts) {
        return None;
    }
    stack(&[&l.input_gate, forget, &l.cell_gate, &l.output_gate])
}

fn gru_weights(l: &Gru) -> Option<Weights> {
    if !l.reset_after || l.clip.is_some() || !standard(&l.gate_activation, &[&l.hidden_activation])
    {
        return None;
    }
    stack(&[&l.update_gate, &l.reset_gate, &l.new_gate])
}

fn fused(
    x: Tensor<3>,
    ([w_ih, b_ih], [w_hh, b_hh]): Weights,
    cell: Cell,
    reverse: bool,
) -> Tensor<3> {
    let flat = |b: Tensor<2>| {
        let n = b.dims()[1];
        b.reshape([n]).into_dispatch()
    };
    let out = <Dispatch as FlexKernels>::recurrent(
        x.into_dispatch(),
        w_ih.into_dispatch(),
        flat(b_ih),
        w_hh.into_dispatch(),
        flat(b_hh),
        cell,
        reverse,
    );
    Tensor::from_dispatch(out)
}

/// Batch rows per task: fixed, not the thread count (see the module's notes).
const ROWS: usize = 16;

/// An op's sizes: batch, steps, input features, hidden units, gates.
#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    t: usize,
    i: usize,
    h: usize,
    cell: Cell,
    reverse: bool,
}

impl Dims {
    /// From the input's dims `[b, t, i]` and the stacked input weights' `[i, g·h]`.
    fn new(x: &[usize], w_ih: &[usize], cell: Cell, reverse: bool) -> Self {
        Dims {
            b: x[0],
            t: x[1],
            i: x[2],
            h: w_ih[1] / cell.gates(),
            cell,
            reverse,
        }
    }

    fn gh(&self) -> usize {
        self.cell.gates() * self.h
    }

    /// The step processed `k`-th.
    fn step(&self, k: usize) -> usize {
        if self.reverse { self.t - 1 - k } else { k }
    }

    fn tasks(&self) -> usize {
        self.b.div_ceil(ROWS)
    }

    /// `buf` cut into one chunk of `per_task` values per task, or, when `buf` is empty (nothing
    /// kept or wanted), an empty chunk per task.
    fn chunks<'a>(&self, buf: &'a mut [f32], per_task: usize) -> Vec<&'a mut [f32]> {
        if buf.is_empty() {
            (0..self.tasks()).map(|_| &mut [][..]).collect()
        } else {
            buf.chunks_mut(per_task).collect()
        }
    }

    fn rows(&self, task: usize) -> std::ops::Range<usize> {
        task * ROWS..self.b.min((task + 1) * ROWS)
    }
}

/// What the forward pass keeps for the backward pass, per row and step: four values per hidden
/// unit (LSTM: the input, forget, candidate and output gates; GRU: the update, reset and new
/// gates and the new gate's hidden product with its bias), the LSTM's cell state, and the output
/// (the op's own output tensor, shared, not copied).
#[derive(Clone, Debug)]
pub(crate) struct Kept {
    slots: Vec<f32>,
    cells: Vec<f32>,
    outputs: FlexTensor,
}

/// The layer's output `[b, t, h]` for `x [b, t, i]` and `[w_ih, b_ih, w_hh, b_hh]`, and, when
/// `keep`, what the backward pass needs.
pub(crate) fn recurrent_forward(
    x: &FlexTensor,
    weights: [&FlexTensor; 4],
    cell: Cell,
    reverse: bool,
    keep: bool,
) -> (FlexTensor, Option<Kept>) {
    let (xd, xv) = values(x);
    let [(wd, w_ih), (_, b_ih), (_, w_hh), (_, b_hh)] = weights.map(values);
    let d = Dims::new(&xd, &wd, cell, reverse);
    let (t, i, h, gh) = (d.t, d.i, d.h, d.gh());
    let mut outputs = vec![0f32; d.b * t * h];
    let mut slots = vec![0f32; if keep { d.b * t * 4 * h } else { 0 }];
    let mut cells = vec![
        0f32;
        if keep && cell == Cell::Lstm {
            d.b * t * h
        } else {
            0
        }
    ];
    let per = ROWS * t;
    let slot_chunks = d.chunks(&mut slots, per * 4 * h);
    let cell_chunks = d.chunks(&mut cells, per * h);
    outputs
        .par_chunks_mut(per * h)
        .zip(xv.par_chunks(per * i))
        .zip(slot_chunks.into_par_iter().zip(cell_chunks))
        .for_each(|((out, xs), (kept, kept_cells))| {
            let n = out.len() / (t * h);
            // every step's input product, with its bias
            let mut xp = vec![0f32; n * t * gh];
            product(&mut xp, false, xs, false, &w_ih, false, [n * t, gh, i]);
            for row in xp.chunks_exact_mut(gh) {
                for (v, &c) in row.iter_mut().zip(b_ih.iter()) {
                    *v += c;
                }
            }
            let mut hidden = vec![0f32; n * h];
            let mut state = vec![0f32; n * h];
            let mut hp = vec![0f32; n * gh];
            // the gates' values, when not kept
            let mut scratch = vec![0f32; 4 * h];
            for k in 0..t {
                let s = d.step(k);
                if k > 0 {
                    product(&mut hp, false, &hidden, false, &w_hh, false, [n, gh, h]);
                }
                for r in 0..n {
                    let at = r * t + s;
                    let (xp, hp) = (&xp[at * gh..][..gh], &hp[r * gh..][..gh]);
                    let kept = if kept.is_empty() {
                        &mut scratch[..]
                    } else {
                        &mut kept[at * 4 * h..][..4 * h]
                    };
                    let h_row = &mut hidden[r * h..][..h];
                    match cell {
                        Cell::Gru => gru_row(xp, hp, &b_hh, h_row, kept),
                        Cell::Lstm => {
                            let c_row = &mut state[r * h..][..h];
                            lstm_row(xp, hp, &b_hh, h_row, c_row, kept);
                            if !kept_cells.is_empty() {
                                kept_cells[at * h..][..h].copy_from_slice(c_row);
                            }
                        }
                    }
                    out[at * h..][..h].copy_from_slice(h_row);
                }
            }
        });
    let out = FlexTensor::from_data(TensorData::new(outputs, [d.b, t, h]));
    let kept = keep.then(|| Kept {
        slots,
        cells,
        outputs: out.clone(),
    });
    (out, kept)
}

simd_fn! {
    /// One GRU row's step: from its input product `xp` (with the input bias), hidden product
    /// `hp` and the hidden bias, `hidden` (the previous state) becomes the new one; `kept` gets
    /// the update, reset and new gates and the new gate's hidden part. Each gate's
    /// pre-activation in Burn's order: input part + (hidden product + hidden bias).
    fn gru_row(xp: &[f32], hp: &[f32], bias: &[f32], hidden: &mut [f32], kept: &mut [f32]) {
        let h = hidden.len();
        let (xp, hp, bias, kept) = (&xp[..3 * h], &hp[..3 * h], &bias[..3 * h], &mut kept[..4 * h]);
        let (kz, rest) = kept.split_at_mut(h);
        let (kr, rest) = rest.split_at_mut(h);
        let (kn, khn) = rest.split_at_mut(h);
        for j in 0..h {
            let z = sigmoid(xp[j] + (hp[j] + bias[j]));
            let r = sigmoid(xp[h + j] + (hp[h + j] + bias[h + j]));
            let hn = hp[2 * h + j] + bias[2 * h + j];
            let n = tanh(xp[2 * h + j] + r * hn);
            let one_minus_z = -z + 1.0;
            hidden[j] = n * one_minus_z + z * hidden[j];
            [kz[j], kr[j], kn[j], khn[j]] = [z, r, n, hn];
        }
    }
}

simd_fn! {
    /// One LSTM row's step, as `gru_row`: `hidden` and `state` (the cell) become the new ones;
    /// `kept` gets the input, forget, candidate and output gates.
    fn lstm_row(
        xp: &[f32],
        hp: &[f32],
        bias: &[f32],
        hidden: &mut [f32],
        state: &mut [f32],
        kept: &mut [f32],
    ) {
        let h = hidden.len();
        let (xp, hp, bias) = (&xp[..4 * h], &hp[..4 * h], &bias[..4 * h]);
        let (state, kept) = (&mut state[..h], &mut kept[..4 * h]);
        let (ki, rest) = kept.split_at_mut(h);
        let (kf, rest) = rest.split_at_mut(h);
        let (kg, ko) = rest.split_at_mut(h);
        for j in 0..h {
            let pre = |g: usize| xp[g * h + j] + (hp[g * h + j] + bias[g * h + j]);
            let (i, f, g, o) = (sigmoid(pre(0)), sigmoid(pre(1)), tanh(pre(2)), sigmoid(pre(3)));
            let c = f * state[j] + i * g;
            state[j] = c;
            hidden[j] = o * tanh(c);
            [ki[j], kf[j], kg[j], ko[j]] = [i, f, g, o];
        }
    }
}

simd_fn! {
    /// One GRU row's step backwards: from the gradient `dh` reaching the step's output (the
    /// next step's, then the output's own `gout` added), the kept gates and the previous state
    /// (zero before the first step), the gates' pre-activation gradients of the input part
    /// (`dgx`) and of the hidden part (`dgh`: the new gate's times the reset), and in `dh` the
    /// previous state's gradient through the update gate (the hidden products' part is added
    /// after).
    fn gru_row_back(
        gout: &[f32],
        kept: &[f32],
        h_prev: &[f32],
        dh: &mut [f32],
        dgx: &mut [f32],
        dgh: &mut [f32],
    ) {
        let h = dh.len();
        let (gout, kept, h_prev) = (&gout[..h], &kept[..4 * h], &h_prev[..h]);
        let (dgx, dgh) = (&mut dgx[..3 * h], &mut dgh[..3 * h]);
        for j in 0..h {
            let [z, r, n, hn] = [kept[j], kept[h + j], kept[2 * h + j], kept[3 * h + j]];
            let g = dh[j] + gout[j];
            let dnp = g * (1.0 - z) * (1.0 - n * n);
            let dzp = g * (h_prev[j] - n) * z * (1.0 - z);
            let drp = dnp * hn * r * (1.0 - r);
            [dgx[j], dgx[h + j], dgx[2 * h + j]] = [dzp, drp, dnp];
            [dgh[j], dgh[h + j], dgh[2 * h + j]] = [dzp, drp, dnp * r];
            dh[j] = g * z;
        }
    }
}

simd_fn! {
    /// One LSTM row's step backwards, as `gru_row_back`: from `dh` and `gout`, the cell's
    /// gradient `dc` (becoming the previous cell's), the kept gates, the cell state and the
    /// previous one, the gates' pre-activation gradients `dg` (input and hidden parts alike);
    /// `dh` is zeroed for the hidden products' part.
    fn lstm_row_back(
        gout: &[f32],
        kept: &[f32],
        c: &[f32],
        c_prev: &[f32],
        dh: &mut [f32],
        dc: &mut [f32],
        dg: &mut [f32],
    ) {
        let h = dh.len();
        let (gout, kept, c, c_prev) = (&gout[..h], &kept[..4 * h], &c[..h], &c_prev[..h]);
        let (dc, dg) = (&mut dc[..h], &mut dg[..4 * h]);
        for j in 0..h {
            let [i, f, g, o] = [kept[j], kept[h + j], kept[2 * h + j], kept[3 * h + j]];
            let dout = dh[j] + gout[j];
            let tc = tanh(c[j]);
            let dct = dc[j] + dout * o * (1.0 - tc * tc);
            dc[j] = dct * f;
            dg[j] = dct * g * i * (1.0 - i);
            dg[h + j] = dct * c_prev[j] * f * (1.0 - f);
            dg[2 * h + j] = dct * i * (1.0 - g * g);
            dg[3 * h + j] = dout * tc * o * (1.0 - o);
            dh[j] = 0.0;
        }
    }
}

/// The gradients of `recurrent_forward` from the output gradient `grad [b, t, h]`: the input's
/// (when `want_dx`) and the four weights'.
pub(crate) fn recurrent_backward(
    x: &FlexTensor,
    [w_ih, w_hh]: [&FlexTensor; 2],
    kept: &Kept,
    grad: &FlexTensor,
    cell: Cell,
    reverse: bool,
    want_dx: bool,
) -> [Option<FlexTensor>; 5] {
    let (xd, xv) = values(x);
    let (wd, w_ih) = values(w_ih);
    let (_, w_hh) = values(w_hh);
    let (_, gv) = values(grad);
    let (_, ov) = values(&kept.outputs);
    let d = Dims::new(&xd, &wd, cell, reverse);
    let (t, i, h, gh) = (d.t, d.i, d.h, d.gh());
    let mut dx = vec![0f32; if want_dx { d.b * t * i } else { 0 }];
    let per = ROWS * t;
    let dx_chunks = d.chunks(&mut dx, per * i);
    // per task: dW_ih, db_ih, dW_hh, db_hh
    let partials: Vec<[Vec<f32>; 4]> = dx_chunks
        .into_par_iter()
        .enumerate()
        .map(|(task, dx)| {
            let rows = d.rows(task);
            let n = rows.len();
            let base = rows.start * t;
            let xs = &xv[base * i..][..n * t * i];
            let go = &gv[base * h..][..n * t * h];
            let slots = &kept.slots[base * 4 * h..][..n * t * 4 * h];
            let outs = &ov[base * h..][..n * t * h];
            let cells = if cell == Cell::Lstm {
                &kept.cells[base * h..][..n * t * h]
            } else {
                &[][..]
            };
            // the gates' pre-activation gradients: of the input part, and (GRU: differing in
            // the new gate) of the hidden part
            let mut dgx = vec![0f32; n * t * gh];
            let mut dgh = vec![0f32; if cell == Cell::Gru { n * t * gh } else { 0 }];
            let mut dh = vec![0f32; n * h];
            let mut dc = vec![0f32; n * h];
            let mut step_dg = vec![0f32; n * gh];
            let zeros = vec![0f32; h];
            for k in (0..t).rev() {
                let s = d.step(k);
                let prev = (k > 0).then(|| d.step(k - 1));
                for r in 0..n {
                    let at = r * t + s;
                    let before = prev.map(|p| r * t + p);
                    let (kept, gout) = (&slots[at * 4 * h..][..4 * h], &go[at * h..][..h]);
                    let dg = &mut step_dg[r * gh..][..gh];
                    let dh_row = &mut dh[r * h..][..h];
                    match cell {
                        Cell::Gru => {
                            let h_prev = before.map_or(&zeros[..], |p| &outs[p * h..][..h]);
                            let dgx_row = &mut dgx[at * gh..][..gh];
                            gru_row_back(gout, kept, h_prev, dh_row, dgx_row, dg);
                            dgh[at * gh..][..gh].copy_from_slice(dg);
                        }
                        Cell::Lstm => {
                            let c_row = &cells[at * h..][..h];
                            let c_prev = before.map_or(&zeros[..], |p| &cells[p * h..][..h]);
                            let dc_row = &mut dc[r * h..][..h];
                            lstm_row_back(gout, kept, c_row, c_prev, dh_row, dc_row, dg);
                            dgx[at * gh..][..gh].copy_from_slice(dg);
                        }
                    }
                }
                if k > 0 {
                    product(&mut dh, true, &step_dg, false, &w_hh, true, [n, h, gh]);
                }
            }
            let dgh = if cell == Cell::Gru { &dgh } else { &dgx };
            if !dx.is_empty() {
                product(dx, false, &dgx, false, &w_ih, true, [n * t, i, gh]);
            }
            let mut dw_ih = vec![0f32; i * gh];
            product(&mut dw_ih, false, xs, true, &dgx, false, [i, gh, n * t]);
            // each step's previous state (zero before the first)
            let mut h_prev = vec![0f32; n * t * h];
            for r in 0..n {
                for k in 1..t {
                    let (s, p) = (d.step(k), d.step(k - 1));
                    h_prev[(r * t + s) * h..][..h].copy_from_slice(&outs[(r * t + p) * h..][..h]);
                }
            }
            let mut dw_hh = vec![0f32; h * gh];
            product(&mut dw_hh, false, &h_prev, true, dgh, false, [h, gh, n * t]);
            [dw_ih, column_sums(&dgx, gh), dw_hh, column_sums(dgh, gh)]
        })
        .collect();
    let total =
        |k: usize, len: usize| sum_in_order(partials.iter().map(|p| p[k].clone()).collect(), len);
    let tensor = |v: Vec<f32>, shape: Vec<usize>| FlexTensor::from_data(TensorData::new(v, shape));
    [
        want_dx.then(|| tensor(dx, vec![d.b, t, i])),
        Some(tensor(total(0, i * gh), vec![i, gh])),
        Some(tensor(total(1, gh), vec![gh])),
        Some(tensor(total(2, h * gh), vec![h, gh])),
        Some(tensor(total(3, gh), vec![gh])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use burn::module::Module;
    use burn::nn::gru::{BiGruConfig, GruConfig};
    use burn::nn::lstm::{BiLstmConfig, LstmConfig};

    /// Every gradient the fused layer and Burn's layer give, on the same module.
    fn compare<M: Module + Clone>(
        name: &str,
        layer: M,
        params: impl Fn(&M) -> Vec<Param>,
        ours: impl Fn(&M, Tensor<3>) -> Tensor<3>,
        theirs: impl Fn(&M, Tensor<3>) -> Tensor<3>,
        [b, t, i]: [usize; 3],
    ) {
        let device = Device::flex().autodiff();
        let x = noise([b, t, i], 3, -1.0, 1.0, &device);
        let run = |fused: bool| {
            let x = x.clone().detach().require_grad();
            let y = if fused {
                ours(&layer, x.clone())
            } else {
                theirs(&layer, x.clone())
            };
            let mix = noise(y.dims(), 4, -1.0, 1.0, &device);
            let grads = (y.clone() * mix).sum().backward();
            let mut out = vec![host(y), host(x.grad(&grads).unwrap())];
            for p in params(&layer) {
                out.push(match p {
                    Param::Weight(w) => host(w.grad(&grads).unwrap()),
                    Param::Bias(b) => host(b.grad(&grads).unwrap()),
                });
            }
            out
        };
        let (a, b) = (run(true), run(false));
        assert_eq!(a.len(), b.len());
        for (k, (a, b)) in a.iter().zip(&b).enumerate() {
            let d = worst(a, b);
            assert!(
                d < 1e-5,
                "{name}: value {k} (0 output, 1 dx, then parameters) differs by {d}"
            );
        }
        // inference, without autodiff
        let plain = layer.valid();
        let x = x.inner();
        let d = worst(&host(ours(&plain, x.clone())), &host(theirs(&plain, x)));
        assert!(d < 1e-5, "{name}: inference differs by {d}");
    }

    /// A parameter whose gradient the tests compare.
    #[derive(Clone)]
    enum Param {
        Weight(Tensor<2>),
        Bias(Tensor<1>),
    }

    fn gate_params(g: &GateController) -> Vec<Param> {
        let mut v = Vec::new();
        for l in [&g.input_transform, &g.hidden_transform] {
            v.push(Param::Weight(l.weight.val()));
            v.push(Param::Bias(l.bias.as_ref().unwrap().val()));
        }
        v
    }

    fn lstm_params(l: &Lstm) -> Vec<Param> {
        [
            &l.input_gate,
            l.forget_gate.as_ref().unwrap(),
            &l.cell_gate,
            &l.output_gate,
        ]
        .into_iter()
        .flat_map(gate_params)
        .collect()
    }

    fn gru_params(l: &Gru) -> Vec<Param> {
        [&l.update_gate, &l.reset_gate, &l.new_gate]
            .into_iter()
            .flat_map(gate_params)
            .collect()
    }

    // 37 rows: tasks of 16, 16 and 5; 6 steps
    const SHAPE: [usize; 3] = [37, 6, 5];

    #[test]
    fn the_fused_lstm_and_its_gradients_equal_burns() {
        let device = Device::flex().autodiff();
        for reverse in [false, true] {
            let layer = LstmConfig::new(5, 7, true)
                .with_reverse(reverse)
                .init(&device);
            compare(
                "lstm",
                layer,
                lstm_params,
                lstm,
                |l, x| l.forward(x, None).0,
                SHAPE,
            );
        }
        let layer = BiLstmConfig::new(5, 7, true).init(&device);
        let params = |l: &BiLstm| [lstm_params(&l.forward), lstm_params(&l.reverse)].concat();
        compare(
            "bi-lstm",
            layer,
            params,
            bi_lstm,
            |l, x| l.forward(x, None).0,
            SHAPE,
        );
    }

    #[test]
    fn the_fused_gru_and_its_gradients_equal_burns() {
        let device = Device::flex().autodiff();
        let layer = GruConfig::new(5, 7, true).init(&device);
        compare(
            "gru",
            layer,
            gru_params,
            gru,
            |l, x| l.forward(x, None),
            SHAPE,
        );
        let layer = BiGruConfig::new(5, 7, true).init(&device);
        let params = |l: &BiGru| [gru_params(&l.forward), gru_params(&l.reverse)].concat();
        compare(
            "bi-gru",
            layer,
            params,
            bi_gru,
            |l, x| l.forward(x, None).0,
            SHAPE,
        );
    }
}
