//! Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray, "Fast Algorithms for Convolutional
//! Neural Networks", 2016) for the "same" 3 × 3 convolutions of `conv_unfolded`: forward, input
//! gradient and weight gradient, each as 16 matrix products over channels in a transform
//! domain (2.25× fewer multiplications than the direct convolution).

use rayon::prelude::*;
use std::mem::MaybeUninit;

use crate::conv::{Same, product, sum_in_order};
use crate::simd::{lanewise, written};

// Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray, "Fast Algorithms for Convolutional
// Neural Networks", 2016) for the "same" 3 × 3 convolutions of `conv_unfolded`: each 2 × 2 output
// tile comes from the 4 × 4 input tile around it with 16 multiplications per input channel
// instead of 36. Input tiles (`Bᵀ d B`) and kernels (`G g Gᵀ`) are carried into a 16-point
// transform domain, where the convolution is 16 independent matrix products over channels; the
// products are carried back with `Aᵀ m A`. In one dimension, for inputs d₀..d₃ and taps g₀..g₂:
// m₀ = (d₀ − d₂)g₀, m₁ = (d₁ + d₂)(g₀ + g₁ + g₂)/2, m₂ = (d₂ − d₁)(g₀ − g₁ + g₂)/2,
// m₃ = (d₁ − d₃)g₂; y₀ = m₀ + m₁ + m₂ = d₀g₀ + d₁g₁ + d₂g₂ and y₁ = m₁ − m₂ − m₃ =
// d₁g₀ + d₂g₁ + d₃g₂. Transform point ξ = 4i + j: i the vertical transform index, j the
// horizontal one.

/// Images carried into the transform domain at a time (the products' width: their tiles):
/// fixed, so the products' shapes (and results) do not depend on the thread count. One image of
/// the reference CNN's second convolution takes 16 · (32 + 64) · 56 values there (344 KiB), which
/// stay in a 512 KiB L2 cache between the transforms and the products; two did not, and the
/// transforms waited on memory.
const WINOGRAD_IMAGES: usize = 1;

thread_local! {
    /// A Winograd task's transform-domain values and products and the transforms' scratch, kept
    /// per thread between calls (grown, never zeroed: every value is written before it is read).
    static WINOGRAD_SCRATCH: std::cell::RefCell<Vec<f32>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The per-thread scratch `buf` (grown as needed) cut for `all` tiles of `c` input and `o` output
/// planes: their transform-domain values (`[16, c, all]` and `[16, o, all]`) and the plane
/// transforms' own scratch (12 parity planes).
fn winograd_buffers(
    buf: &mut Vec<f32>,
    tiles: Tiles,
    [c, o]: [usize; 2],
    all: usize,
) -> (&mut [f32], &mut [f32], &mut [f32]) {
    let n = 16 * (c + o) * all + 12 * tiles.parity_len();
    if buf.len() < n {
        buf.resize(n, 0.0);
    }
    let (inputs, rest) = buf.split_at_mut(16 * c * all);
    let (outputs, scratch) = rest.split_at_mut(16 * o * all);
    (inputs, outputs, scratch)
}

/// The 3 × 3 kernels of `weight [o, c, 3, 3]` in the transform domain, `G g Gᵀ`, as `[16, o, c]`;
/// with `transposed`, those of the convolution that gives the input gradient (each kernel turned
/// by 180°, input and output channels swapped) as `[16, c, o]`.
pub(crate) fn winograd_kernels(weight: &[f32], o: usize, c: usize, transposed: bool) -> Vec<f32> {
    // G's rows applied to three values: (1, 0, 0), (½, ½, ½), (½, −½, ½), (0, 0, 1)
    let g = |a: f32, b: f32, d: f32| [a, 0.5 * (a + b + d), 0.5 * (a - b + d), d];
    let (rows, cols) = if transposed { (c, o) } else { (o, c) };
    let mut u = vec![0f32; 16 * o * c];
    for (k, kernel) in weight.chunks_exact(9).enumerate() {
        let (oi, ci) = (k / c, k % c);
        let tap = |y: usize, x: usize| {
            if transposed {
                kernel[(2 - y) * 3 + 2 - x]
            } else {
                kernel[y * 3 + x]
            }
        };
        // vertical first (G g: 4 × 3), then horizontal ((G g) Gᵀ: 4 × 4)
        let columns = [0, 1, 2].map(|x| g(tap(0, x), tap(1, x), tap(2, x)));
        let (row, col) = if transposed { (ci, oi) } else { (oi, ci) };
        for i in 0..4 {
            let t = g(columns[0][i], columns[1][i], columns[2][i]);
            for (j, value) in t.into_iter().enumerate() {
                u[((i * 4 + j) * rows + row) * cols + col] = value;
            }
        }
    }
    u
}

/// The tile grid of an `h × w` plane for F(2×2, 3×3): `th × tw` tiles of 2 × 2 outputs, each
/// reading the 4 × 4 inputs around it (zero outside the plane). The transform domain keeps each
/// tile row with one tile more, `tw + 1` (a spare whose values are never used): then tile `t`'s
/// inputs in the padded plane split by row and column parity sit at `t` + a fixed offset, and
/// every transform runs as one vectorized loop over all tiles.
#[derive(Clone, Copy)]
struct Tiles {
    h: usize,
    w: usize,
    th: usize,
    tw: usize,
}

impl Tiles {
    fn new(h: usize, w: usize) -> Self {
        Tiles {
            h,
            w,
            th: h.div_ceil(2),
            tw: w.div_ceil(2),
        }
    }

    /// Tiles per tile row in the transform domain (the spare included).
    fn row(&self) -> usize {
        self.tw + 1
    }

    /// Tiles per plane in the transform domain (the spares included).
    fn count(&self) -> usize {
        self.th * self.row()
    }

    /// Values of one parity plane (`th + 1` rows of `row()`, and one more that the last spare
    /// tile reads).
    fn parity_len(&self) -> usize {
        (self.th + 1) * self.row() + 1
    }
}

simd_fn! {
    /// One plane `[h, w]` carried into the transform domain: `v[ξ·stride + t]` for each tile `t`
    /// and point ξ. `scratch` holds at least 12 · `parity_len` values (nothing is read from it
    /// before being written).
    fn winograd_input(tiles: Tiles, plane: &[f32], scratch: &mut [f32], v: &mut [f32], stride: usize) {
        let Tiles { h, w, th, .. } = tiles;
        let (row, n, len) = (tiles.row(), tiles.count(), tiles.parity_len());
        let (q, hs) = scratch.split_at_mut(4 * len);
        // the plane padded by one zero, split by parity: q[2a + b][y'·row + x'] is the padded
        // plane's value at row 2y' + a, column 2x' + b, i.e. the plane's at (2y' + a − 1,
        // 2x' + b − 1)
        let (q0, q1) = q.split_at_mut(2 * len);
        for (a, pair) in [q0, q1].into_iter().enumerate() {
            let (even, odd) = pair.split_at_mut(len);
            even.fill(0.0);
            odd.fill(0.0);
            for yp in 0..th + 1 {
                let Some(y) = (2 * yp + a).checked_sub(1).filter(|&y| y < h) else {
                    continue;
                };
                let src = &plane[y * w..(y + 1) * w];
                let (e, o) = (&mut even[yp * row..][..row], &mut odd[yp * row..][..row]);
                // padded column 2x' + 1 is the plane's 2x', padded 2x' the plane's 2x' − 1
                let pairs = src.chunks_exact(2);
                if let [last] = pairs.remainder() {
                    o[w / 2] = *last;
                }
                for ((o, e), two) in o[..w / 2].iter_mut().zip(&mut e[1..=w / 2]).zip(pairs) {
                    *o = two[0];
                    *e = two[1];
                }
            }
        }
        // horizontal, over all positions at once: for padded-row parity a, the four columns
        // 2x', 2x' + 1, 2x' + 2, 2x' + 3 are q[2a][x'], q[2a + 1][x'], q[2a][x' + 1],
        // q[2a + 1][x' + 1]; Bᵀ applied, kept as hs[(a·4 + j)·len + position]
        let m = (th + 1) * row;
        for a in 0..2 {
            let (even, odd) = (&q[2 * a * len..][..m + 1], &q[(2 * a + 1) * len..][..m + 1]);
            let d = [&even[..m], &odd[..m], &even[1..], &odd[1..]];
            apply_bt(d, &mut hs[a * 4 * len..], len);
        }
        // vertical, over all tiles at once: tile t's padded rows 2ty + r are parity r % 2 at
        // position t + (r / 2)·row
        for j in 0..4 {
            let d = std::array::from_fn(|r| &hs[((r % 2) * 4 + j) * len + (r / 2) * row..][..n]);
            apply_bt(d, &mut v[j * stride..], 4 * stride);
        }
    }
}

/// Winograd's Bᵀ (4 × 4, rows (1, 0, −1, 0), (0, 1, 1, 0), (0, −1, 1, 0), (0, 1, 0, −1)) applied
/// to each (d₀[t], d₁[t], d₂[t], d₃[t]): row k's result at `out[k·spacing + t]`.
#[inline(always)]
fn apply_bt(d: [&[f32]; 4], out: &mut [f32], spacing: usize) {
    let n = d[0].len();
    let (o0, rest) = out.split_at_mut(spacing);
    let (o1, rest) = rest.split_at_mut(spacing);
    let (o2, o3) = rest.split_at_mut(spacing);
    lanewise(
        d,
        [&mut o0[..n], &mut o1[..n], &mut o2[..n], &mut o3[..n]],
        |[d0, d1, d2, d3]| [d0 - d2, d1 + d2, d2 - d1, d1 - d3],
    );
}

simd_fn! {
    /// One output plane back from the transform domain: `m[ξ·stride + t]` for each tile `t`,
    /// `Aᵀ m A`, written to `out [h, w]` (the tiles' parts outside the plane, and the spare
    /// tiles, dropped): every value of `out` is written. `ys` is a scratch of 4 · tiles.
    fn winograd_output(
        tiles: Tiles,
        m: &[f32],
        stride: usize,
        ys: &mut [f32],
        out: &mut [MaybeUninit<f32>],
    ) {
        let Tiles { h, w, tw, .. } = tiles;
        let (row, n) = (tiles.row(), tiles.count());
        let p: [&[f32]; 16] = std::array::from_fn(|xi| &m[xi * stride..][..n]);
        let (y00, rest) = ys.split_at_mut(n);
        let (y01, rest) = rest.split_at_mut(n);
        let (y10, y11) = rest.split_at_mut(n);
        let y11 = &mut y11[..n];
        lanewise(p, [&mut *y00, &mut *y01, &mut *y10, &mut *y11], |p| {
            // vertical: s_a[j] = Σᵢ Aᵀ[a][i]·m[4i + j]; then horizontal
            let s0: [f32; 4] = std::array::from_fn(|j| p[j] + p[4 + j] + p[8 + j]);
            let s1: [f32; 4] = std::array::from_fn(|j| p[4 + j] - p[8 + j] - p[12 + j]);
            [
                s0[0] + s0[1] + s0[2],
                s0[1] - s0[2] - s0[3],
                s1[0] + s1[1] + s1[2],
                s1[1] - s1[2] - s1[3],
            ]
        });
        for (a, (left, right)) in [(&*y00, &*y01), (&*y10, &*y11)].into_iter().enumerate() {
            for (ty, (l, r)) in left.chunks_exact(row).zip(right.chunks_exact(row)).enumerate() {
                let y = 2 * ty + a;
                if y >= h {
                    continue;
                }
                let line = &mut out[y * w..(y + 1) * w];
                let mut pairs = line.chunks_exact_mut(2);
                for ((two, &lv), &rv) in (&mut pairs).zip(l).zip(r) {
                    two[0] = MaybeUninit::new(lv);
                    two[1] = MaybeUninit::new(rv);
                }
                if let [last] = pairs.into_remainder() {
                    *last = MaybeUninit::new(l[tw - 1]);
                }
            }
        }
    }
}

simd_fn! {
    /// One output-gradient plane `[h, w]` carried into the transform domain, the gradient of
    /// the forward pass's products: `A dy Aᵀ` for each tile's 2 × 2 values (zero outside the
    /// plane and for the spare tiles) at `d[ξ·stride + t]`; A is 4 × 2, rows (1, 0), (1, 1),
    /// (1, −1), (0, −1). `scratch` holds at least 12 · tiles.
    fn winograd_grad(tiles: Tiles, plane: &[f32], scratch: &mut [f32], d: &mut [f32], stride: usize) {
        let w = tiles.w;
        let (row, n) = (tiles.row(), tiles.count());
        // split by parity: p[2a + b][ty·row + tx] = dy[2ty + a][2tx + b]
        let p = &mut scratch[..4 * n];
        p.fill(0.0);
        for (y, src) in plane.chunks_exact(w).enumerate() {
            let (ty, a) = (y / 2, y % 2);
            let pairs = src.chunks_exact(2);
            if let [last] = pairs.remainder() {
                p[2 * a * n + ty * row + w / 2] = *last;
            }
            let (left, right) = p[2 * a * n..].split_at_mut(n);
            let (left, right) = (&mut left[ty * row..][..w / 2], &mut right[ty * row..][..w / 2]);
            for ((l, r), two) in left.iter_mut().zip(right).zip(pairs) {
                *l = two[0];
                *r = two[1];
            }
        }
        // vertical: e[(b·4 + i)·n + t] = (A (row a = 0, 1))ᵢ for column parity b
        let (p, e) = scratch.split_at_mut(4 * n);
        for b in 0..2 {
            apply_a(&p[b * n..][..n], &p[(2 + b) * n..][..n], &mut e[b * 4 * n..], n);
        }
        // horizontal: d[4i + j] from e[i] of column parities 0 and 1
        for i in 0..4 {
            apply_a(&e[i * n..][..n], &e[(4 + i) * n..][..n], &mut d[4 * i * stride..], stride);
        }
    }
}

/// Winograd's A (4 × 2, rows (1, 0), (1, 1), (1, −1), (0, −1)) applied to each pair
/// (p[t], q[t]): row k's result at `out[k·spacing + t]`.
#[inline(always)]
fn apply_a(p: &[f32], q: &[f32], out: &mut [f32], spacing: usize) {
    let n = p.len();
    let (o0, rest) = out.split_at_mut(spacing);
    let (o1, rest) = rest.split_at_mut(spacing);
    let (o2, o3) = rest.split_at_mut(spacing);
    lanewise(
        [p, q],
        [&mut o0[..n], &mut o1[..n], &mut o2[..n], &mut o3[..n]],
        |[p, q]| [p, p + q, p - q, -q],
    );
}

/// A plane transform into the transform domain: `winograd_input` or `winograd_grad`.
type PlaneTransform = fn(Tiles, &[f32], &mut [f32], &mut [f32], usize);

/// Every plane of consecutive `images` (each `planes` planes of the tiles' plane size) carried
/// into the transform domain by `transform`: point ξ of plane p of image i at
/// `out[ξ·planes·all + p·all + i·n + t]` (n tiles a plane, `all` the images' tiles), so that
/// each point is a `[planes, all]` matrix.
fn planes_into(
    transform: PlaneTransform,
    tiles: Tiles,
    images: &[f32],
    planes: usize,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let (plane, n) = (tiles.h * tiles.w, tiles.count());
    let all = images.len() / (planes * plane) * n;
    for (i, image) in images.chunks_exact(planes * plane).enumerate() {
        for (p, values) in image.chunks_exact(plane).enumerate() {
            transform(
                tiles,
                values,
                scratch,
                &mut out[p * all + i * n..],
                planes * all,
            );
        }
    }
}

/// The weight gradient of a "same" 3 × 3 convolution by F(2×2, 3×3), the forward pass
/// transposed: per tile, the input's transform (as forward) and the output gradient's
/// (`winograd_grad`); their 16 products over tiles, `[o, tiles] · [tiles, c]`, summed into
/// `dU [16, o, c]`; then `dW = Gᵀ dU G` → `[o, c, 3, 3]`. Per task of `IMAGES_PER_TASK` images,
/// `WINOGRAD_IMAGES` at a time, their products added onto the task's sum; the tasks' sums added
/// in order (the same on any thread count).
pub(crate) fn winograd_weight_grad(x: &[f32], g: &[f32], s: &Same) -> Vec<f32> {
    let (c, o, plane) = (s.c, s.o, s.plane());
    let tiles = Tiles::new(s.h, s.w);
    let n = tiles.count();
    let partials: Vec<Vec<f32>> = (0..s.tasks())
        .into_par_iter()
        .map(|task| {
            let mut du = vec![0f32; 16 * o * c];
            WINOGRAD_SCRATCH.with_borrow_mut(|buf| {
                let task = s.task_images(task);
                // `WINOGRAD_IMAGES` at a time, their products added onto the task's
                for first in task.clone().step_by(WINOGRAD_IMAGES) {
                    let images = first..(first + WINOGRAD_IMAGES).min(task.end);
                    let all = images.len() * n; // their tiles
                    let (v, d, scratch) = winograd_buffers(buf, tiles, [c, o], all);
                    let (xs, gs) = (
                        &x[images.start * c * plane..images.end * c * plane],
                        &g[images.start * o * plane..images.end * o * plane],
                    );
                    planes_into(winograd_input, tiles, xs, c, scratch, v);
                    planes_into(winograd_grad, tiles, gs, o, scratch, d);
                    for ((dux, dx), vx) in du
                        .chunks_exact_mut(o * c)
                        .zip(d.chunks_exact(o * all))
                        .zip(v.chunks_exact(c * all))
                    {
                        product(dux, true, dx, false, vx, true, [o, c, all]);
                    }
                }
            });
            du
        })
        .collect();
    let du = sum_in_order(partials, 16 * o * c);
    // Gᵀ's rows applied to four values: (1, ½, ½, 0), (0, ½, −½, 0), (0, ½, ½, 1)
    let gt = |p: [f32; 4]| {
        [
            p[0] + 0.5 * (p[1] + p[2]),
            0.5 * (p[1] - p[2]),
            0.5 * (p[1] + p[2]) + p[3],
        ]
    };
    let mut dw = vec![0f32; o * c * 9];
    for (k, out) in dw.chunks_exact_mut(9).enumerate() {
        let at = |i: usize, j: usize| du[(i * 4 + j) * o * c + k];
        // dU G (4 × 3), then Gᵀ (dU G) (3 × 3)
        let right: [[f32; 3]; 4] = std::array::from_fn(|i| gt([0, 1, 2, 3].map(|j| at(i, j))));
        for col in 0..3 {
            let column = gt([0, 1, 2, 3].map(|i| right[i][col]));
            for (r, value) in column.into_iter().enumerate() {
                out[r * 3 + col] = value;
            }
        }
    }
    dw
}

/// A "same" 3 × 3 convolution of stride 1 by F(2×2, 3×3): `x [b, c, h, w]` and kernels `u`
/// from `winograd_kernels` (`[16, o, c]`) → `[b, o, h, w]`. Per task of `WINOGRAD_IMAGES`
/// images: every plane into the transform domain `[16, c, tiles]`, 16 products `[o, c]` ·
/// `[c, tiles]`, every output plane back.
pub(crate) fn winograd_conv(x: &[f32], [b, c, h, w]: [usize; 4], u: &[f32], o: usize) -> Vec<f32> {
    let tiles = Tiles::new(h, w);
    let (plane, n) = (h * w, tiles.count());
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(WINOGRAD_IMAGES * o * plane)
            .zip(x.par_chunks(WINOGRAD_IMAGES * c * plane))
            .for_each(|(ys, xs)| {
                let images = xs.len() / (c * plane);
                let all = images * n; // the task's tiles
                WINOGRAD_SCRATCH.with_borrow_mut(|buf| {
                    let (v, m, scratch) = winograd_buffers(buf, tiles, [c, o], all);
                    planes_into(winograd_input, tiles, xs, c, scratch, v);
                    for ((mx, ux), vx) in m
                        .chunks_exact_mut(o * all)
                        .zip(u.chunks_exact(o * c))
                        .zip(v.chunks_exact(c * all))
                    {
                        product(mx, false, ux, false, vx, false, [o, all, c]);
                    }
                    for (i, image) in ys.chunks_exact_mut(o * plane).enumerate() {
                        for (oc, p) in image.chunks_exact_mut(plane).enumerate() {
                            let at = oc * all + i * n;
                            winograd_output(tiles, &m[at..], o * all, scratch, p);
                        }
                    }
                });
            });
    };
    // SAFETY: the tiles cover every output value, and `winograd_output` writes each of them
    unsafe { written(b * o * plane, fill) }
}
