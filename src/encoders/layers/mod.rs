//! The kernels the model definitions are built from: named weights and convolutions with their
//! batch norm folded in (`conv`), tiled im2col convolutions (`im2col`), and fused CPU passes for
//! bias, activation, depthwise convolution and pooling (`fused`). Nothing here knows a model's
//! architecture or weight names.

pub(in crate::encoders) mod conv;
pub(in crate::encoders) mod fused;
mod im2col;
