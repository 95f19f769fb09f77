//! `kiln dev`: throwaway Kiln clusters on the developer's machine, without root. One
//! detached QEMU per node boots a qcow2 overlay of the base image (never written) with
//! its NoCloud seed from `kiln cluster gen`; the nodes share an unprivileged L2 segment
//! (a UDP hub process) and reach the host through user networking, where control planes
//! forward the API server and etcd to 127.0.0.1. Everything a cluster owns lives in its
//! state folder ([`state`]); `down` removes it.
//!
//! Owns the dev cluster's lifecycle on the host. It does not build images (`pipeline`),
//! render seeds (`cluster`) or know QEMU internals beyond the command line (`qemu`).

pub mod cli;
pub mod console;
pub mod down;
pub mod events;
pub mod host;
pub mod hub;
pub mod kube;
pub mod launch;
pub mod state;
pub mod status;
pub mod up;
pub mod wait;

pub use cli::{run, DevCmd};
