//! The model definitions: each architecture's structure and weight names, loaded from its
//! published checkpoint (EfficientNet-Lite, ResNet, DINOv2's ViT, and the packed CPU forward of
//! BERT for the notes encoder). They are built from the kernels in `layers`.

pub(in crate::encoders) mod efficientnet;
pub(in crate::encoders) mod packed_bert;
pub(in crate::encoders) mod resnet;
pub(in crate::encoders) mod vit;
