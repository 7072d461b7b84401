//! The Facelens HTTP service.
//!
//! A thin router over the core: handlers read a request, ask [`access`] whether the caller may
//! proceed, hand the image to the bounded inference queue ([`engine`]) through [`analyze`],
//! and shape the answer — the contract's envelope on `/faceDetect/index` (always HTTP 200, the
//! code in the body, like the original) or the native JSON with real HTTP statuses on
//! `/v1/detect`. Everything that can go wrong maps to one row of the error table in
//! facelens-core.

pub mod access;
mod admin;
pub mod analyze;
pub mod baidu;
pub mod config;
pub mod conn;
pub mod engine;
pub mod fetch;
pub mod input;
mod juhe_api;
mod metrics;
mod native;
pub mod openapi;
mod server;
mod web;

pub use config::Config;
pub use server::{AppState, Server, router, store_options};

/// The API name of the Juhe endpoint, as keys' allowed-API lists spell it.
pub const API_FACE_DETECT: &str = "faceDetect";
/// The API name of the native endpoint.
pub const API_NATIVE_DETECT: &str = "detect";
/// The API name of the Baidu-compatible endpoint (its own name, so an operator can allow or
/// switch it apart from `faceDetect`).
pub const API_BAIDU_DETECT: &str = "baiduDetect";
