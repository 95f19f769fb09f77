//! The local load balancer in front of the API servers (issue 4): IPVS over generic
//! netlink, a reconciler of desired vs observed state, and per-backend health checks.

pub mod dump;
#[cfg(test)]
pub mod fake;
pub mod health;
pub mod ipvs;
pub mod model;
pub mod probe;
pub mod reconcile;
pub mod run;
pub mod settings;
pub mod vip;
