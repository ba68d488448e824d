//! The attention tests' bounds (a file of its own, included by `#[path]` where it is used: the
//! integration tests and the AMX kernel's unit tests).

/// For a head at columns `d..2d` of rows `ld` wide (`n` rows): each query row's largest
/// `|score|` (the sum of `|q k|` over the head's features, times `scale`) and each column's
/// largest `|v|` (indexed by column, `ld` of them): what `tolerance::attention*` take.
pub fn bounds(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (n, d, ld): (usize, usize, usize),
    scale: f32,
) -> (Vec<f32>, Vec<f32>) {
    let score_abs = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    (0..d)
                        .map(|c| (q[i * ld + d + c] * k[j * ld + d + c]).abs())
                        .sum::<f32>()
                })
                .fold(0.0f32, f32::max)
                * scale
        })
        .collect();
    let v_abs = (0..ld)
        .map(|c| (0..n).map(|j| v[j * ld + c].abs()).fold(0.0f32, f32::max))
        .collect();
    (score_abs, v_abs)
}
