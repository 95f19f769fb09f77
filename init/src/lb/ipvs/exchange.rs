//! One request/reply exchange, as a pure state machine fed with received datagrams:
//! splits each datagram into netlink messages, drops the ones that belong to another
//! exchange (sequence number), collects the payloads of a dump, and decides when the
//! exchange is over (NLMSG_DONE, or NLMSG_ERROR: 0 is an ACK, a negative errno a refusal).
//!
//! No I/O here: `socket` sends and receives, this decides. Never panics on any input.

use std::fmt::Debug;

use netlink_packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload, ParseableParametrized};
use netlink_packet_generic::{GenlHeader, GenlMessage};

use super::codec::{family_id, malformed, CtrlMessage};
use crate::lb::model::IpvsError;

/// Collects the replies to the request sent with sequence number `seq`.
#[derive(Debug)]
pub struct Exchange<F> {
    op: &'static str,
    family: u16,
    seq: u32,
    items: Vec<F>,
    /// A message of ours that did not decode. Reported once the exchange is over, so the
    /// rest of a dump is still drained and cannot leak into (and `EBUSY`) the next one.
    failed: Option<IpvsError>,
}

impl<F> Exchange<F>
where
    F: ParseableParametrized<[u8], GenlHeader> + Debug,
{
    /// `family` is the nlmsg_type data messages must carry (the request's family id).
    pub fn new(op: &'static str, family: u16, seq: u32) -> Self {
        Self {
            op,
            family,
            seq,
            items: Vec::new(),
            failed: None,
        }
    }

    /// Consumes one datagram. `Ok(true)`: the exchange is complete; `Ok(false)`: more
    /// datagrams are expected. A kernel refusal or a reply that does not decode is `Err`.
    pub fn feed(&mut self, datagram: &[u8]) -> Result<bool, IpvsError> {
        let mut rest = datagram;
        while !rest.is_empty() {
            let (len, seq) = match NetlinkBuffer::new_checked(rest) {
                Ok(buf) => (buf.length() as usize, buf.sequence_number()),
                // The framing is lost: nothing after this point can be trusted.
                Err(e) => return Err(malformed(self.op, e.to_string())),
            };
            let Some(bytes) = rest.get(..len) else {
                return Err(malformed(self.op, "message longer than its datagram"));
            };
            rest = rest.get(len.next_multiple_of(4)..).unwrap_or(&[]);
            if seq != self.seq {
                // A late reply to an earlier exchange that was abandoned on an error.
                continue;
            }
            if self.message(bytes)? {
                return match self.failed.take() {
                    Some(e) => Err(e),
                    None => Ok(true),
                };
            }
        }
        Ok(false)
    }

    /// Handles one message of ours; `Ok(true)` when it ends the exchange.
    fn message(&mut self, bytes: &[u8]) -> Result<bool, IpvsError> {
        let msg = match NetlinkMessage::<GenlMessage<F>>::deserialize(bytes) {
            Ok(msg) => msg,
            Err(e) => {
                self.failed
                    .get_or_insert_with(|| malformed(self.op, e.to_string()));
                return Ok(false);
            }
        };
        match msg.payload {
            NetlinkPayload::InnerMessage(genl) => {
                if msg.header.message_type != self.family {
                    self.failed.get_or_insert_with(|| {
                        malformed(
                            self.op,
                            format!("message of type {}", msg.header.message_type),
                        )
                    });
                } else {
                    self.items.push(genl.payload);
                }
                Ok(false)
            }
            NetlinkPayload::Done(done) if done.code < 0 => Err(kernel(self.op, done.code)),
            NetlinkPayload::Done(_) => Ok(true),
            NetlinkPayload::Error(err) => match err.raw_code() {
                0 => Ok(true),
                code if code < 0 => Err(kernel(self.op, code)),
                code => Err(malformed(self.op, format!("positive error code {code}"))),
            },
            NetlinkPayload::Overrun(_) => Err(malformed(self.op, "NLMSG_OVERRUN")),
            _ => Ok(false),
        }
    }

    /// The payloads collected so far (all of them once `feed` returned `Ok(true)`).
    pub fn into_items(self) -> Vec<F> {
        self.items
    }
}

/// The kernel's refusal: `errno` is the negative value of NLMSG_ERROR / NLMSG_DONE.
pub fn kernel(op: &'static str, errno: i32) -> IpvsError {
    IpvsError::Kernel {
        op,
        errno,
        text: std::io::Error::from_raw_os_error(errno.saturating_neg()).to_string(),
    }
}

/// The IPVS family id from the outcome of a `CTRL_CMD_GETFAMILY` exchange; `ENOENT` (no
/// such family: ip_vs not built or not loaded) is `Unsupported`.
pub fn resolve_family(
    outcome: Result<Vec<CtrlMessage>, IpvsError>,
    op: &'static str,
) -> Result<u16, IpvsError> {
    match outcome {
        Err(IpvsError::Kernel { errno, .. }) if errno == -libc::ENOENT => {
            Err(IpvsError::Unsupported)
        }
        Err(e) => Err(e),
        Ok(replies) => match replies.first() {
            Some(reply) => family_id(reply, op),
            None => Err(malformed(op, "no reply to CTRL_CMD_GETFAMILY")),
        },
    }
}
