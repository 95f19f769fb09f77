//! Kiln's own IPVS client over generic netlink: the `model::Ipvs` implementation for the
//! real kernel. Family "IPVS", version 1 (`include/uapi/linux/ip_vs.h`).
//!
//! - `attrs`: typed service and destination attributes (unknown ones kept as `Other`).
//! - `nests`: the first-level SERVICE/DEST nests and the nlctrl attributes.
//! - `codec`: the requests Kiln sends, their bytes, and dump replies → `model` types.
//! - `exchange`: the reply rules (sequence numbers, multipart dumps, DONE, ACK, errno).
//! - `socket`: [`Netlink`], the only part that does I/O.
//!
//! Built on netlink-packet-core (nlmsghdr, attributes) and netlink-packet-generic
//! (genlmsghdr); the IPVS payloads are ours. Decoding never panics: truncated or garbled
//! replies are `IpvsError::Malformed`. This module knows nothing of desired state or
//! health: that is the reconciler's business.

mod attrs;
mod codec;
mod exchange;
mod nests;
mod socket;

pub use attrs::{DestAttr, ServiceAttr};
pub use codec::{
    bare, dest, dest_from, encode, family_id, get_family, service, service_from, service_key,
    Command, CtrlMessage, IpvsMessage, IPVS_GENL_NAME, IPVS_GENL_VERSION, IP_VS_SVC_F_HASHED,
};
pub use exchange::{resolve_family, Exchange};
pub use nests::{CmdAttr, CtrlAttr};
pub use socket::{hexdump, Netlink};

#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
