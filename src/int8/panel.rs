//! What the weight layouts share: a quantised `(rows, cols)` weight as integers with f32
//! scales. The layout type `L` says in which order `values` and `scales` are kept (its doc comment)
//! and holds whatever else its kernel needs; each layout's module adds the constructor and the
//! product ([`super::Int8Matrix`], [`super::InterleavedMatrix`]).

pub struct Panel<T, L> {
    pub(in crate::int8) rows: usize,
    pub(in crate::int8) cols: usize,
    /// The integers, in the order `L` describes (rows padded where it says so).
    pub(in crate::int8) values: Vec<T>,
    /// The scales, in the order `L` describes.
    pub(in crate::int8) scales: Vec<f32>,
    pub(in crate::int8) layout: L,
}

impl<T, L> Panel<T, L> {
    /// Output features (padding excluded).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// A zeroed `(m, rows)` output for `m` activation rows `cols` wide, which must be this
    /// weight's width.
    pub(in crate::int8) fn output(&self, m: usize, cols: usize) -> Vec<f32> {
        assert_eq!(cols, self.cols, "activation width must equal the weight's columns");
        vec![0f32; m * self.rows]
    }

    /// `x Wᵀ` by `kernel` for `x`'s `m` rows `cols` wide: `(m, rows)` row-major.
    pub(in crate::int8) fn product<X>(&self, x: &X, (m, cols): (usize, usize), kernel: fn(&Self, &X, &mut [f32])) -> Vec<f32> {
        let mut out = self.output(m, cols);
        kernel(self, x, &mut out);
        out
    }
}
