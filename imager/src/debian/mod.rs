//! Debian package sourcing: signed indices, dependency resolution, fetching and extraction.
//!
//! Owns everything that talks to a Debian mirror or reads Debian formats. It must not know
//! about disk images: it hands out resolved packages and extracted entries.

pub mod deb;
pub mod fetch;
pub mod mirror;
pub mod packages;
pub mod release;
pub mod resolve;
pub mod source;
pub mod version;
