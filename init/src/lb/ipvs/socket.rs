//! [`Netlink`]: the kernel's IPVS table behind the `model::Ipvs` trait, over a blocking
//! NETLINK_GENERIC socket (netlink-sys; no async runtime).
//!
//! Owns the socket, the sequence numbers and the resolved family id; encoding, decoding
//! and the end-of-reply rules live in `codec` and `exchange`. Needs no receive timeout:
//! the kernel builds generic-netlink replies synchronously inside our `send`/`recv`.

use std::io;

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_generic::constants::GENL_ID_CTRL;
use netlink_packet_generic::GenlFamily;
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

use super::codec::{self, malformed, Command, IpvsMessage};
use super::exchange::{resolve_family, Exchange};
use crate::lb::model::{Dest, Ipvs, IpvsError, Service, ServiceKey};

/// Large enough for any netlink datagram: the kernel caps dump skbs at 32 KiB.
const RECV_BUF: usize = 64 * 1024;

/// The kernel IPVS table of the current network namespace.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    family: u16,
    seq: u32,
    buf: Vec<u8>,
    /// The datagrams of the last exchange, for `hexdump` (capturing test vectors).
    last_reply: Vec<Vec<u8>>,
}

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> IpvsError {
    move |source| IpvsError::Io { op, source }
}

impl Netlink {
    /// Opens a generic-netlink socket and resolves the "IPVS" family.
    /// `Err(IpvsError::Unsupported)` when the kernel has no IPVS (module not loaded).
    pub fn open() -> Result<Self, IpvsError> {
        let op = "resolve IPVS family";
        let mut socket = Socket::new(NETLINK_GENERIC).map_err(io_err("open socket"))?;
        socket.bind_auto().map_err(io_err("bind socket"))?;
        // Connected to the kernel: unicasts from other processes are refused.
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(io_err("connect socket"))?;
        let mut nl = Self {
            socket,
            family: GENL_ID_CTRL,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF),
            last_reply: Vec::new(),
        };
        let outcome = nl.exchange(op, codec::get_family(), GENL_ID_CTRL, false);
        nl.family = resolve_family(outcome, op)?;
        Ok(nl)
    }

    /// The dynamic generic-netlink id of the IPVS family.
    pub fn family_id(&self) -> u16 {
        self.family
    }

    /// The datagrams the kernel sent in reply to the last request (see [`hexdump`]).
    pub fn last_reply(&self) -> &[Vec<u8>] {
        &self.last_reply
    }

    /// Removes every virtual service (and so every destination). For tests and resets.
    pub fn flush(&mut self) -> Result<(), IpvsError> {
        self.ipvs("IPVS_CMD_FLUSH", codec::bare(Command::Flush), false)
            .map(drop)
    }

    fn ipvs(
        &mut self,
        op: &'static str,
        msg: IpvsMessage,
        dump: bool,
    ) -> Result<Vec<IpvsMessage>, IpvsError> {
        let family = self.family;
        self.exchange(op, msg, family, dump)
    }

    /// Sends one request and reads datagrams until its exchange is complete.
    fn exchange<F>(
        &mut self,
        op: &'static str,
        payload: F,
        family: u16,
        dump: bool,
    ) -> Result<Vec<F>, IpvsError>
    where
        F: GenlFamily
            + netlink_packet_core::Emitable
            + netlink_packet_core::ParseableParametrized<[u8], netlink_packet_generic::GenlHeader>
            + std::fmt::Debug,
    {
        self.seq = self.seq.wrapping_add(1);
        let flags = NLM_F_REQUEST | NLM_F_ACK | if dump { NLM_F_DUMP } else { 0 };
        let request = codec::encode(payload, family, flags, self.seq);
        retry_eintr(|| self.socket.send(&request, 0)).map_err(io_err(op))?;
        let mut exchange = Exchange::<F>::new(op, family, self.seq);
        self.last_reply.clear();
        loop {
            self.buf.clear();
            let (socket, buf) = (&self.socket, &mut self.buf);
            let n = retry_eintr(|| socket.recv(buf, libc::MSG_TRUNC)).map_err(io_err(op))?;
            let got = &self.buf[..n.min(self.buf.len())];
            if n > got.len() {
                return Err(malformed(op, format!("datagram of {n} bytes truncated")));
            }
            self.last_reply.push(got.to_vec());
            if exchange.feed(got)? {
                return Ok(exchange.into_items());
            }
        }
    }
}

/// Formats datagrams in the init/testdata/ipvs format: 16 hex bytes a line, `---`
/// between datagrams. For turning a guest's [`Netlink::last_reply`] into a test vector.
pub fn hexdump(datagrams: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for (i, datagram) in datagrams.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&format!("# datagram {}: {} bytes\n", i + 1, datagram.len()));
        for line in datagram.chunks(16) {
            let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
            out.push_str(&hex.join(" "));
            out.push('\n');
        }
    }
    out
}

/// PID 1 takes signals (SIGCHLD) all the time; an interrupted call is simply retried.
fn retry_eintr<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

impl Ipvs for Netlink {
    fn services(&mut self) -> Result<Vec<Service>, IpvsError> {
        let op = "IPVS_CMD_GET_SERVICE";
        self.ipvs(op, codec::bare(Command::GetService), true)?
            .iter()
            .map(|m| codec::service_from(m, op))
            .collect()
    }

    /// The destinations of `service`; empty if the service does not exist (the kernel's
    /// dump of an unknown service is empty, not an error).
    fn dests(&mut self, service: &ServiceKey) -> Result<Vec<Dest>, IpvsError> {
        let op = "IPVS_CMD_GET_DEST";
        self.ipvs(op, codec::service_key(Command::GetDest, service), true)?
            .iter()
            .map(|m| codec::dest_from(m, service, op))
            .collect()
    }

    fn new_service(&mut self, service: &Service) -> Result<(), IpvsError> {
        let msg = codec::service(Command::NewService, service);
        self.ipvs("IPVS_CMD_NEW_SERVICE", msg, false).map(drop)
    }

    fn set_service(&mut self, service: &Service) -> Result<(), IpvsError> {
        let msg = codec::service(Command::SetService, service);
        self.ipvs("IPVS_CMD_SET_SERVICE", msg, false).map(drop)
    }

    fn del_service(&mut self, service: &ServiceKey) -> Result<(), IpvsError> {
        let msg = codec::service_key(Command::DelService, service);
        self.ipvs("IPVS_CMD_DEL_SERVICE", msg, false).map(drop)
    }

    fn new_dest(&mut self, service: &ServiceKey, dest: &Dest) -> Result<(), IpvsError> {
        let msg = codec::dest(Command::NewDest, service, dest);
        self.ipvs("IPVS_CMD_NEW_DEST", msg, false).map(drop)
    }

    fn set_dest(&mut self, service: &ServiceKey, dest: &Dest) -> Result<(), IpvsError> {
        let msg = codec::dest(Command::SetDest, service, dest);
        self.ipvs("IPVS_CMD_SET_DEST", msg, false).map(drop)
    }

    fn del_dest(&mut self, service: &ServiceKey, dest: &Dest) -> Result<(), IpvsError> {
        let msg = codec::dest(Command::DelDest, service, dest);
        self.ipvs("IPVS_CMD_DEL_DEST", msg, false).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// This host decides which outcome is right: without /proc/net/ip_vs the kernel has no
    /// IPVS family and `open` must say `Unsupported`; with it, `open` and a dump must work.
    #[test]
    fn open_matches_host_ipvs_support() {
        let result = Netlink::open();
        if Path::new("/proc/net/ip_vs").exists() {
            let mut nl = match result {
                Ok(nl) => nl,
                Err(e) => panic!("host has /proc/net/ip_vs but open failed: {e}"),
            };
            assert!(nl.services().is_ok(), "GET_SERVICE dump failed");
        } else {
            assert!(
                matches!(result, Err(IpvsError::Unsupported)),
                "host has no /proc/net/ip_vs, want Unsupported, got {result:?}"
            );
        }
    }
}
