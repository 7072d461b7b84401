//! The Facelens HTTP service.
//!
//! A thin router over the core, text-embeddings-inference style: every detection protocol —
//! the contract's envelope on `/faceDetect/index` (always HTTP 200, the code in the body, like
//! the original), the native JSON with real HTTP statuses on `/v1/detect`, and Baidu's v3 API —
//! is a [`request::Protocol`], and one handler ([`request::handle`]) does what they share:
//! room in the byte budget and the engine, reading the body, admission ([`access`]), the
//! analysis on the bounded queue ([`engine`], [`analyze`]) and settling the quota. Everything
//! that can go wrong maps to one row of the error table in facelens-core ([`error`]).
//!
//! Module map: [`state`] (what requests share), [`router`] (routes and middleware),
//! [`server`] and [`conn`] (the listener and its limits), [`input`] (fields and image
//! sources), [`budget`] (bytes in flight), [`fetch`] (SSRF-safe URL download), [`config`].

pub mod access;
mod admin;
pub mod analyze;
pub mod baidu;
pub mod budget;
pub mod config;
pub mod conn;
pub mod engine;
pub mod error;
pub mod fetch;
pub mod input;
pub mod juhe;
mod metrics;
pub mod native;
pub mod openapi;
pub mod request;
pub mod router;
mod server;
pub mod state;
mod web;

pub use config::Config;
pub use router::router;
pub use server::{Server, store_options};
pub use state::AppState;

/// The API name of the Juhe endpoint, as keys' allowed-API lists spell it.
pub const API_FACE_DETECT: &str = "faceDetect";
/// The API name of the native endpoint.
pub const API_NATIVE_DETECT: &str = "detect";
/// The API name of the Baidu-compatible endpoint (its own name, so an operator can allow or
/// switch it apart from `faceDetect`).
pub const API_BAIDU_DETECT: &str = "baiduDetect";
