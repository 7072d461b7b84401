//! Core types shared by every Facelens crate.
//!
//! This crate is deliberately free of I/O and heavy dependencies: it holds the vocabulary
//! (points, boxes, faces), the pure geometry the pipeline is built from (IoU, NMS, similarity
//! transforms for alignment) and the single table of error codes that every front end — CLI,
//! Juhe-compatible endpoint, native API — answers with. Keeping the codes here means the
//! contract's numbers and messages are defined exactly once.

pub mod error;
pub mod geometry;
pub mod juhe;
pub mod net;
pub mod types;

pub use error::ErrorCode;
pub use geometry::{Affine, Point, Rect};
